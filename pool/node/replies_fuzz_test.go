package node

import (
	"context"
	"net/http"
	"testing"

	"github.com/hashforge/hashforge/internal/jsonrpc"
	"github.com/hashforge/hashforge/internal/jsonrpc/jsonrpctest"
)

// Statuses Bitcoin Core and btcd answer with: errors come as 404 or 500.
var cannedStatuses = []int{200, 404, 500, 401, 403}

// FuzzNodeReplies feeds arbitrary submitblock and getblockchaininfo
// replies to the client. Nothing panics; a block reads as accepted (no
// verdict, no error) only when the node said null and no error; a
// refusal of the credentials is an error; the chain name is never empty
// and is asked for once.
func FuzzNodeReplies(f *testing.F) {
	for _, s := range []string{
		`{"result":null,"error":null,"id":1}`,
		`{"result":"duplicate","error":null,"id":1}`,
		`{"result":"","error":null}`,
		`{"result":null,"error":{"code":-25,"message":"bad-txnmrklroot"}}`,
		`{"result":null,"error":{"code":-22,"message":"Block decode failed"}}`,
		`{"result":null,"error":{"code":-28,"message":"Loading block index..."}}`,
		`{"result":null,"error":{"code":-25,"message":""}}`,
		`{"result":{"chain":"regtest","blocks":1},"error":null}`,
		`{"result":{"chain":""}}`, `{"error":{"code":"x"}}`, `{}`, `null`, `[]`, `{"RESULT":null,"Error":null}`,
	} {
		f.Add(uint8(0), []byte(s))
	}
	f.Add(uint8(3), []byte(`{"result":null,"error":null}`))
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, status uint8, body []byte) {
		// Go's minimizer spends ~n²/2 execs on an n-byte input that finds
		// new coverage; nothing here needs long replies to be reached.
		if len(body) > 256 {
			return
		}
		rt := &jsonrpctest.Canned{Status: cannedStatuses[int(status)%len(cannedStatuses)], Body: body}
		c := &Client{ep: jsonrpc.Endpoint{URL: "http://node.invalid:8332/", Version: "2.0"}, http: &http.Client{Transport: rt}}
		c.longPoll = c.http
		authRefused := rt.Status == http.StatusUnauthorized || rt.Status == http.StatusForbidden
		result, rerr, ok := jsonrpctest.Envelope(body)
		noError := len(rerr) == 0 || string(rerr) == "null"

		verdict, err := c.SubmitBlock(ctx, "00")
		if authRefused && err == nil {
			t.Fatalf("HTTP %d: verdict %q, no error", rt.Status, verdict)
		}
		if err == nil && !ok {
			t.Fatalf("body %q is no envelope, but verdict %q", body, verdict)
		}
		if verdict == "" && err == nil && !(noError && string(result) == "null") {
			t.Fatalf("body %q reads as an accepted block", body)
		}

		chain, err := c.Chain(ctx)
		if err == nil {
			if chain == "" || !ok || !noError || authRefused {
				t.Fatalf("body %q (HTTP %d): chain %q", body, rt.Status, chain)
			}
			calls := rt.Calls
			if again, err := c.Chain(ctx); err != nil || again != chain || rt.Calls != calls {
				t.Fatalf("second Chain = %q, %v after %d more calls; want the cached %q", again, err, rt.Calls-calls, chain)
			}
		}
	})
}
