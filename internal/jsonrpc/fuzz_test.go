package jsonrpc

import (
	"bytes"
	"context"
	"errors"
	"github.com/hashforge/hashforge/internal/jsonrpc/jsonrpctest"
	"net/http"
	"testing"
)

// replyStatuses are what nodes and wallets answer with: Core sends RPC
// errors as 404 or 500, refused credentials as 401 or 403.
var replyStatuses = []int{200, 401, 403, 404, 500, 503}

// maxFuzzBody bounds FuzzPost's bodies; Post's messages quote 200 bytes of
// a bad body, so longer ones are still reached.
const maxFuzzBody = 256

// FuzzPost: a node's or wallet's reply body is network input. Post never
// panics; refused credentials are ErrAuth whatever the body; otherwise the
// body is accepted exactly when it is a JSON object (or null), and the
// Reply carries its result and error members, an error of null being none.
func FuzzPost(f *testing.F) {
	for _, s := range []string{
		`{"result":{"chain":"regtest"},"error":null,"id":1}`,
		`{"result":null,"error":{"code":-8,"message":"bad"},"id":1}`,
		`{"result":"x","Result":"y","ERROR":null}`,
		`null`, `[]`, `"result"`, ``, `{"result":1`, ` {"error" : [1, 2] } `, `{"re\u0073ult":true}`,
	} {
		f.Add(uint8(0), []byte(s))
	}
	f.Add(uint8(1), []byte(`{"result":true}`))
	f.Add(uint8(4), []byte(`{"result":null,"error":{"code":-25,"message":"verify"}}`))
	hc := &http.Client{}
	ep := &Endpoint{URL: "http://node.invalid:8332/", User: "u", Pass: "p", Version: "2.0"}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, status uint8, body []byte) {
		// Nothing in an envelope needs more bytes to be reached, and Go's
		// minimizer spends ~n²/2 execs on every n-byte input that finds
		// new coverage: a stray 2 kB body held the worker for tens of
		// seconds.
		if len(body) > maxFuzzBody {
			return
		}
		rt := &jsonrpctest.Canned{Status: replyStatuses[int(status)%len(replyStatuses)], Body: body}
		hc.Transport = rt
		rep, err := ep.Post(ctx, hc, 1, "getblockchaininfo", nil, nil)
		if rt.Status == http.StatusUnauthorized || rt.Status == http.StatusForbidden {
			if !errors.Is(err, ErrAuth) || rep != nil {
				t.Fatalf("HTTP %d: %+v, %v; want ErrAuth", rt.Status, rep, err)
			}
			return
		}
		result, rerr, ok := jsonrpctest.Envelope(body)
		if (err == nil) != ok || errors.Is(err, ErrAuth) {
			t.Fatalf("body %q: error %v, want one: %v", body, err, !ok)
		}
		if err != nil {
			return
		}
		if string(rerr) == "null" {
			rerr = nil
		}
		if !bytes.Equal(rep.Result, result) || !bytes.Equal(rep.Error, rerr) || rep.Status != http.StatusText(rt.Status) {
			t.Fatalf("body %q: reply %q / %q (%s); want %q / %q", body, rep.Result, rep.Error, rep.Status, result, rerr)
		}
	})
}
