package walletrpc

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashforge/hashforge/internal/jsonrpc"
	"github.com/hashforge/hashforge/internal/jsonrpc/jsonrpctest"
	"github.com/hashforge/hashforge/payout"
)

var cannedStatuses = []int{200, 500, 404, 401, 403}

// errorMember returns the error member of a reply as encoding/json would
// pick it, nil when the body is no JSON object or has none, or null.
func errorMember(body []byte) json.RawMessage {
	_, rerr, ok := jsonrpctest.Envelope(body)
	if !ok || string(rerr) == "null" {
		return nil
	}
	return rerr
}

// FuzzWalletReplies feeds one arbitrary wallet reply to sendmany,
// gettransaction and listtransactions. A refusal (nothing was sent) is
// what the payout side retries on, so a reply may read as one only when
// the wallet sent an error object or refused the credentials; a garbled
// reply must stay "outcome unknown", never "unreachable". What the calls
// accept is in range: a 64-character txid, fees within 0..MaxMoney,
// distinct transactions no older than asked for.
func FuzzWalletReplies(f *testing.F) {
	txid := strings.Repeat("ab", 32)
	for _, s := range []string{
		`{"result":"` + txid + `","error":null,"id":1}`,
		`{"result":"short","error":null}`,
		`{"result":null,"error":{"code":-6,"message":"Insufficient funds"}}`,
		`{"result":null,"error":{"code":-5,"message":"Invalid or non-wallet transaction id"}}`,
		`{"result":null,"error":{"code":-4,"message":"Comments are not supported"}}`,
		`{"result":{"txid":"` + txid + `","confirmations":3,"fee":-0.0000141,"time":1764892800,"comment":"batch"}}`,
		`{"result":{"txid":"` + txid + `","fee":"x"}}`,
		`{"result":[{"txid":"` + txid + `","category":"send","address":"bcrt1q","amount":-0.5,"fee":-0.0001,"time":1764892800},{"txid":"` + txid + `","category":"send","address":"bcrt1p","amount":-1e-8,"time":1764892801}]}`,
		`{"result":[{"txid":"t","category":"send","amount":"-1","time":1}]}`,
		`{"error":{"code":"x"}}`, `{"error":"text"}`, `null`, `[]`, `{"result":1,"Error":null,"ERROR":{"code":1}}`,
	} {
		f.Add(uint8(0), []byte(s))
	}
	f.Add(uint8(3), []byte(``))
	since := time.Unix(1764892800, 0)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, status uint8, body []byte) {
		// Go's minimizer spends ~n²/2 execs on an n-byte input that finds
		// new coverage; a few entries reach every path.
		if len(body) > 512 {
			return
		}
		rt := &jsonrpctest.Canned{Status: cannedStatuses[int(status)%len(cannedStatuses)], Body: body}
		c := &Client{ep: jsonrpc.Endpoint{URL: "http://wallet.invalid:8332/", Version: "1.0"}, http: &http.Client{Transport: rt}}
		authRefused := rt.Status == http.StatusUnauthorized || rt.Status == http.StatusForbidden
		var we *payout.WalletError
		if raw := errorMember(body); raw != nil {
			we = &payout.WalletError{}
			if json.Unmarshal(raw, we) != nil {
				we = nil
			}
		}
		classify := func(call string, err error) {
			t.Helper()
			if errors.Is(err, payout.ErrWalletUnreachable) {
				t.Fatalf("%s: %v: the wallet answered", call, err)
			}
			refusal := payout.IsRefusal(err)
			if refusal && !authRefused && errorMember(body) == nil {
				t.Fatalf("%s: body %q (HTTP %d) read as a refusal: %v", call, body, rt.Status, err)
			}
			if !refusal && (authRefused || we != nil) {
				t.Fatalf("%s: body %q (HTTP %d) not read as a refusal: %v", call, body, rt.Status, err)
			}
		}

		got, err := c.SendMany(ctx, map[string]int64{"bcrt1qfuzz": 1000}, "batch")
		classify("sendmany", err)
		if err == nil && len(got) != 64 {
			t.Fatalf("sendmany txid %q", got)
		}

		tx, err := c.Transaction(ctx, txid)
		classify("gettransaction", err)
		if err == nil && (tx.Fee < 0 || tx.Fee > payout.MaxMoney) {
			t.Fatalf("gettransaction fee %d", tx.Fee)
		}
		if nf := errors.Is(err, payout.ErrTxNotFound); nf != (!authRefused && we != nil && we.Code == rpcNoTxInfo) {
			t.Fatalf("gettransaction of body %q: %v (not found: %v)", body, err, nf)
		}

		sends, err := c.RecentSends(ctx, since)
		classify("listtransactions", err)
		seen := map[string]bool{}
		for _, s := range sends {
			if s.TxID == "" || seen[s.TxID] || s.Time.Before(since) || s.Fee < 0 || s.Fee > payout.MaxMoney {
				t.Fatalf("listtransactions gave %+v", s)
			}
			seen[s.TxID] = true
		}
	})
}
