package payout_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashforge/hashforge/internal/devstack"
	"github.com/hashforge/hashforge/internal/devstack/devtest"
	"github.com/hashforge/hashforge/ledger"
	"github.com/hashforge/hashforge/payout"
	"github.com/hashforge/hashforge/payout/walletrpc"
)

const (
	spellLower = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"
	spellUpper = "BCRT1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KYGT080"
)

// recordedCoreWallet serves Bitcoin Core's recorded replies
// (testdata/bitcoin-core/rpc_replies.json): every sendmany is refused as
// Core refuses a batch naming one address twice, and the wallet's history
// is empty. It keeps the outputs of each sendmany it was sent.
type recordedCoreWallet struct {
	mu    sync.Mutex
	sends []map[string]json.Number
}

func (c *recordedCoreWallet) calls() []map[string]json.Number {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]map[string]json.Number(nil), c.sends...)
}

func startRecordedCore(t *testing.T) (*recordedCoreWallet, *walletrpc.Client) {
	t.Helper()
	raw, err := os.ReadFile("../testdata/bitcoin-core/rpc_replies.json")
	if err != nil {
		t.Fatal(err)
	}
	var recorded struct {
		Replies map[string]struct {
			Status int             `json:"status"`
			Body   json.RawMessage `json:"body"`
		} `json:"replies"`
	}
	if err := json.Unmarshal(raw, &recorded); err != nil {
		t.Fatal(err)
	}
	c := &recordedCoreWallet{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Method string            `json:"method"`
			Params []json.RawMessage `json:"params"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		name := map[string]string{"sendmany": "sendmany duplicated address",
			"listtransactions": "listtransactions empty"}[req.Method]
		rep, ok := recorded.Replies[name]
		if !ok {
			t.Errorf("no recorded reply for %s", req.Method)
			http.Error(w, "no recorded reply", http.StatusInternalServerError)
			return
		}
		if req.Method == "sendmany" && len(req.Params) > 1 {
			var am map[string]json.Number
			if err := json.Unmarshal(req.Params[1], &am); err != nil {
				t.Errorf("sendmany amounts: %v", err)
			}
			c.mu.Lock()
			c.sends = append(c.sends, am)
			c.mu.Unlock()
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rep.Status)
		_, _ = w.Write(rep.Body)
	}))
	t.Cleanup(srv.Close)
	wc, err := walletrpc.New(srv.URL, "u", "p", walletrpc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c, wc
}

func paymentByBatch(t *testing.T, l *ledger.Ledger, batchID string) ledger.Payment {
	t.Helper()
	ps, err := l.Payments(testCtx(t, time.Minute), 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.BatchID == batchID {
			return p
		}
	}
	t.Fatalf("no payment batch %s in %+v", batchID, ps)
	return ledger.Payment{}
}

// TestRefusedBatchIsHeldNotRebuilt: a ledger holding two spellings of one
// address (as before migration 0007) never puts both in a batch; a batch
// the wallet refuses the way Bitcoin Core does (-8, the recorded reply,
// through the real wallet client) is held with the reason, its items stay
// paid, and its addresses are not planned again, so the wallet is not
// asked again and again; the operator's refund is the way out, and then
// everyone is paid.
func TestRefusedBatchIsHeldNotRebuilt(t *testing.T) {
	l := newLedger(t)
	ctx := testCtx(t, 2*time.Minute)
	fund(t, l, map[string]int64{spellLower: 300_000, spellUpper: 200_000, "C": 150_000})
	core, wc := startRecordedCore(t)

	p := newTestProcessor(t, l, wc)
	if err := p.RunOnce(ctx); err != nil {
		t.Fatalf("run: %v", err)
	}
	sends := core.calls()
	if len(sends) != 1 {
		t.Fatalf("%d sendmany calls, want 1", len(sends))
	}
	seen := map[string]bool{}
	for a := range sends[0] {
		if seen[strings.ToLower(a)] {
			t.Fatalf("sendmany named %s twice: %v", a, sends[0])
		}
		seen[strings.ToLower(a)] = true
	}
	if len(sends[0]) != 2 || sends[0][spellLower] != "0.00300000" || sends[0]["C"] != "0.00150000" {
		t.Fatalf("sendmany outputs %v; want the larger spelling and C", sends[0])
	}
	held := lastPayment(t, l)
	if held.State != payout.StateHeld || !strings.Contains(held.Reason, "duplicated address") {
		t.Fatalf("refused batch: %+v; want held with Core's reason", held)
	}
	if n := journalRows(t, l, "refund", held.ID); n != 0 {
		t.Fatalf("%d refund rows for a held batch", n)
	}
	mustBalance(t, l, spellLower, 0, 0, 300_000)
	mustBalance(t, l, "C", 0, 0, 150_000)
	mustBalance(t, l, spellUpper, 0, 200_000, 0)
	st := p.Stats()
	if st.BatchesHeld != 1 || st.BatchesFailed != 0 || st.ErrorsByKind[payout.ErrKindWalletInvalidAmount] != 1 {
		t.Fatalf("stats %+v; want one held batch, one invalid-parameter refusal", st)
	}
	if open, err := l.OpenBatches(ctx); err != nil || len(open) != 0 {
		t.Fatalf("open batches %+v, %v: a held batch is the operator's", open, err)
	}
	if c, err := l.PaymentStateCounts(ctx); err != nil || c[payout.StateHeld] != 1 {
		t.Fatalf("payment state counts %v, %v", c, err)
	}

	// Later runs: the held addresses (in either spelling) wait; nothing
	// else is due, so the wallet is not asked again.
	for range 3 {
		if err := p.RunOnce(ctx); err != nil {
			t.Fatalf("later run: %v", err)
		}
	}
	if n := len(core.calls()); n != 1 {
		t.Fatalf("sendmany called %d times; the refused batch was rebuilt", n)
	}
	checkJournal(t, l)

	// The way out: the operator fixes the cause and refunds the batch.
	if err := l.RefundDropped(ctx, strings.ToUpper(held.BatchID), "address spellings merged"); err != nil {
		t.Fatalf("refund held batch: %v", err)
	}
	if got := paymentByBatch(t, l, held.BatchID); got.State != payout.StateFailed ||
		!strings.Contains(got.Reason, "duplicated address") || !strings.Contains(got.Reason, "spellings merged") {
		t.Fatalf("refunded batch %+v", got)
	}
	if err := l.RefundDropped(ctx, held.BatchID, ""); err == nil {
		t.Fatal("refunded one batch twice")
	}
	mustBalance(t, l, spellLower, 0, 300_000, 0)
	mustBalance(t, l, "C", 0, 150_000, 0)
	w := &fakeWallet{}
	w.send = paying(w, strings.Repeat("1", 64), 1)
	p = newTestProcessor(t, l, w)
	if err := p.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	w.set(func(w *fakeWallet) { w.send = paying(w, strings.Repeat("2", 64), 1) })
	if err := p.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	mustBalance(t, l, spellLower, 0, 0, 300_000)
	mustBalance(t, l, spellUpper, 0, 0, 200_000)
	mustBalance(t, l, "C", 0, 0, 150_000)
	if p.Stats().BatchesSent != 2 {
		t.Fatalf("stats %+v; want two batches sent (the two spellings apart)", p.Stats())
	}
	checkJournal(t, l)
}

// TestPlannedBatchWithTwoSpellingsHeldUnsent: a planned batch naming one
// address in two spellings (planned by an older pool) is held without
// asking the wallet, which would refuse it (Core) or pay twice.
func TestPlannedBatchWithTwoSpellingsHeldUnsent(t *testing.T) {
	l := newLedger(t)
	ctx := testCtx(t, 2*time.Minute)
	fund(t, l, map[string]int64{spellLower: 300_000, spellUpper: 200_000})
	tx, err := l.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	var id int64
	if err := tx.QueryRow(ctx, `INSERT INTO payments (batch_id, state, total, items)
		VALUES (gen_random_uuid(), 'planned', 500000, 2) RETURNING id`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	for a, v := range map[string]int64{spellLower: 300_000, spellUpper: 200_000} {
		for _, q := range []string{
			`INSERT INTO payment_items (payment_id, address, amount) VALUES ($1, $2, $3)`,
			`INSERT INTO journal (payment_id, address, kind, mature, paid) VALUES ($1, $2, 'payment', -$3::bigint, $3)`,
			`UPDATE accounts SET mature = mature - $3::bigint, paid = paid + $3::bigint WHERE address = $2 AND $1::bigint > 0`,
		} {
			if _, err := tx.Exec(ctx, q, id, a, v); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	w := &fakeWallet{send: func(map[string]int64, string) (string, error) {
		return "", fmt.Errorf("sendmany must not be called")
	}}
	p := newTestProcessor(t, l, w)
	if err := p.RunOnce(ctx); err != nil {
		t.Fatalf("run: %v", err)
	}
	if w.sendCalls() != 0 {
		t.Fatalf("sendmany called %d times", w.sendCalls())
	}
	pay := lastPayment(t, l)
	if pay.State != payout.StateHeld || !strings.Contains(pay.Reason, "twice") {
		t.Fatalf("batch %+v; want held, naming the address twice", pay)
	}
	if st := p.Stats(); st.BatchesHeld != 1 || st.BatchesSent != 0 {
		t.Fatalf("stats %+v", st)
	}
	mustBalance(t, l, spellLower, 0, 0, 300_000)
	mustBalance(t, l, spellUpper, 0, 0, 200_000)
	checkJournal(t, l)
}

// TestPermanentRefusalsHeld: the refusals that name the batch itself
// (an invalid amount, an invalid address, an invalid parameter) hold it;
// a transient one (insufficient funds) still fails and refunds it.
func TestPermanentRefusalsHeld(t *testing.T) {
	for _, c := range []struct {
		err   *payout.WalletError
		state string
	}{
		{&payout.WalletError{Code: -3, Message: "Invalid amount"}, payout.StateHeld},
		{&payout.WalletError{Code: -5, Message: "Invalid Bitcoin address: bc1qxyz"}, payout.StateHeld},
		{&payout.WalletError{Code: -8, Message: "Invalid parameter, duplicated address: " + spellLower}, payout.StateHeld},
		{&payout.WalletError{Code: -6, Message: "Insufficient funds"}, payout.StateFailed},
	} {
		t.Run(c.err.Message, func(t *testing.T) {
			l := newLedger(t)
			ctx := testCtx(t, time.Minute)
			fund(t, l, map[string]int64{"A": 300_000})
			w := &fakeWallet{send: func(map[string]int64, string) (string, error) { return "", c.err }}
			p := newTestProcessor(t, l, w)
			if err := p.RunOnce(ctx); err != nil {
				t.Fatal(err)
			}
			if pay := lastPayment(t, l); pay.State != c.state || !strings.Contains(pay.Reason, c.err.Message) {
				t.Fatalf("payment %+v; want %s with the wallet's reason", pay, c.state)
			}
			if c.state == payout.StateHeld {
				mustBalance(t, l, "A", 0, 0, 300_000)
			} else {
				mustBalance(t, l, "A", 0, 300_000, 0)
			}
			checkJournal(t, l)
		})
	}
}

// TestRealWalletTransientRefusalNotHeld: btcwallet (the dev stack's
// wallet, in simnet, without coins) refuses a batch for want of funds
// before it looks at the addresses (even another network's): a refusal
// that another try may not meet, so the batch fails and is refunded, not
// held. (btcwallet cannot be made to refuse a batch as it is here without
// funding it through mined blocks; Core's refusal is the recorded one.)
func TestRealWalletTransientRefusalNotHeld(t *testing.T) {
	ctx := testCtx(t, 3*time.Minute)
	btcd := devtest.Btcd(t, devstack.BtcdOptions{Network: "simnet"})
	bw := devtest.Btcwallet(t, devstack.BtcwalletOptions{Btcd: btcd})
	l := newLedger(t)
	wallet, err := walletrpc.New(bw.RPCURL(), "", "", walletrpc.Options{Account: "default"})
	if err != nil {
		t.Fatal(err)
	}
	const mainnet = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"
	fund(t, l, map[string]int64{mainnet: 300_000})
	p := newTestProcessor(t, l, wallet)
	if err := p.RunOnce(ctx); err != nil {
		t.Fatalf("run: %v", err)
	}
	pay := lastPayment(t, l)
	t.Logf("btcwallet: %s", pay.Reason)
	if pay.State != payout.StateFailed || !strings.Contains(pay.Reason, "insufficient funds") {
		t.Fatalf("batch refused by an empty btcwallet: %+v; want failed for want of funds", pay)
	}
	mustBalance(t, l, mainnet, 0, 300_000, 0)
	if st := p.Stats(); st.BatchesHeld != 0 || st.BatchesFailed != 1 || st.ErrorsByKind[payout.ErrKindWalletInsufficient] != 1 {
		t.Fatalf("stats %+v", st)
	}
	checkJournal(t, l)
}
