package payout_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashforge/hashforge/ledger"
	"github.com/hashforge/hashforge/payout"
	"github.com/hashforge/hashforge/payout/walletrpc"
	"github.com/hashforge/hashforge/record"
)

// fakeChain says every block is in the main chain with confirmations
// confirmations.
type fakeChain struct {
	confirmations int64
	difficulty    float64
}

func (c fakeChain) BlockState(ctx context.Context, hash string, height int64) (payout.BlockState, error) {
	return payout.BlockState{InMainChain: true, Confirmations: c.confirmations, TipHeight: height + c.confirmations - 1,
		NetworkDifficulty: c.difficulty}, nil
}

// fakeWallet answers sendmany with send, lists history as its sends and
// answers gettransaction from txs (unknown: ErrTxNotFound).
type fakeWallet struct {
	mu      sync.Mutex
	send    func(amounts map[string]int64, comment string) (string, error)
	history []payout.WalletTx // newest first
	txs     map[string]payout.WalletTx
	calls   int
}

func (w *fakeWallet) SendMany(ctx context.Context, amounts map[string]int64, comment string) (string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls++
	return w.send(amounts, comment)
}

func (w *fakeWallet) RecentSends(ctx context.Context, since time.Time) ([]payout.WalletTx, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []payout.WalletTx
	for _, tx := range w.history {
		if !tx.Time.Before(since) {
			out = append(out, tx)
		}
	}
	return out, nil
}

func (w *fakeWallet) Transaction(ctx context.Context, txid string) (payout.WalletTx, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	tx, ok := w.txs[txid]
	if !ok {
		return payout.WalletTx{}, fmt.Errorf("gettransaction %s: %w", txid, payout.ErrTxNotFound)
	}
	return tx, nil
}

func (w *fakeWallet) set(f func(w *fakeWallet)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	f(w)
}

func (w *fakeWallet) sendCalls() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.calls
}

// paying makes a send function that pays with txid and records the
// transaction in the wallet's history (without the comment, as
// btcwallet does) and as confirmed confirms times.
func paying(w *fakeWallet, txid string, confirms int64) func(map[string]int64, string) (string, error) {
	return func(amounts map[string]int64, comment string) (string, error) {
		outs := map[string]int64{}
		for a, v := range amounts {
			outs[a] = v
		}
		tx := payout.WalletTx{TxID: txid, Time: time.Now(), Outputs: outs, Confirms: confirms}
		w.history = append([]payout.WalletTx{tx}, w.history...)
		if w.txs == nil {
			w.txs = map[string]payout.WalletTx{}
		}
		w.txs[txid] = tx
		return txid, nil
	}
}

var blockSeq sync.Mutex
var blockNext int64 = 1000

// fund credits and matures balances through one block recorded without
// terms, so that a batch has something to pay.
func fund(t *testing.T, l *ledger.Ledger, balances map[string]int64) {
	t.Helper()
	ctx := testCtx(t, time.Minute)
	blockSeq.Lock()
	blockNext++
	h := blockNext
	blockSeq.Unlock()
	var reward int64
	var credits []payout.Credit
	for a, v := range balances {
		reward += v
		credits = append(credits, payout.Credit{Address: a, Kind: payout.KindShare, Amount: v, Weight: 1})
	}
	hash := fmt.Sprintf("%064x", h)
	if err := l.RecordBlock(ctx, record.Block{Time: time.Now().Add(-time.Hour), Height: h, Hash: hash, Reward: reward,
		Address: "finder", Accepted: true, Verdict: "accepted"}); err != nil {
		t.Fatal(err)
	}
	bs, err := l.UnsettledBlocks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		if b.Hash != hash {
			continue
		}
		if err := l.CreditBlock(ctx, b.ID, payout.Terms{Scheme: payout.PPLNS}, credits); err != nil {
			t.Fatal(err)
		}
		if err := l.MatureBlock(ctx, b.ID, 100); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("block %s not recorded", hash)
}

func newTestProcessor(t *testing.T, l *ledger.Ledger, w payout.Wallet, tweak ...func(*payout.Config)) *payout.Processor {
	t.Helper()
	cfg := payout.Config{Scheme: payout.PPLNS, FeeBPS: 100, FeeAddress: "fee", Threshold: 100_000,
		Confirmations: 1, Logger: testLogger()}
	for _, f := range tweak {
		f(&cfg)
	}
	p, err := payout.New(cfg, l, fakeChain{confirmations: 1, difficulty: 1000}, w)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func lastPayment(t *testing.T, l *ledger.Ledger) ledger.Payment {
	t.Helper()
	ps, err := l.Payments(testCtx(t, time.Minute), 1, 0)
	if err != nil || len(ps) != 1 {
		t.Fatalf("payments: %+v, %v", ps, err)
	}
	return ps[0]
}

func journalRows(t *testing.T, l *ledger.Ledger, kind string, paymentID int64) int {
	t.Helper()
	var n int
	if err := l.Pool().QueryRow(testCtx(t, time.Minute),
		`SELECT count(*) FROM journal WHERE kind = $1 AND payment_id = $2`, kind, paymentID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func checkJournal(t *testing.T, l *ledger.Ledger) {
	t.Helper()
	if bad, err := l.CheckJournal(testCtx(t, time.Minute)); err != nil || len(bad) > 0 {
		t.Fatalf("journal check: %v, %v", bad, err)
	}
}

// timeoutError is a net.Error timeout, as a client gets when the wallet
// took the request and did not answer in time.
type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// TestSendManyErrorClasses runs a batch into every class of wallet error.
// Where nothing can have been sent and another try may succeed (a
// transient refusal; a connection never made) the batch fails with the
// reason and its items are refunded by journal rows (a refusal of the
// batch as it is holds it: held_test.go); where the send may have
// happened (a timeout after the request was written) it stays planned
// and is reconciled later.
func TestSendManyErrorClasses(t *testing.T) {
	l := newLedger(t)
	ctx := testCtx(t, 2*time.Minute)
	fund(t, l, map[string]int64{"A": 300_000, "B": 200_000})

	postErr := func(err error) error { return &url.Error{Op: "Post", URL: "http://wallet:8332", Err: err} }
	for _, c := range []struct {
		name, kind, reason string
		err                error
	}{
		{"insufficient funds", payout.ErrKindWalletInsufficient, "Insufficient funds",
			&payout.WalletError{Code: -6, Message: "Insufficient funds"}},
		{"fee error", payout.ErrKindWalletFee, "Fee estimation failed",
			&payout.WalletError{Code: -4, Message: "Fee estimation failed. Fallbackfee is disabled."}},
		{"locked", payout.ErrKindWalletLocked, "walletpassphrase",
			&payout.WalletError{Code: -13, Message: "Error: Please enter the wallet passphrase with walletpassphrase first."}},
		{"unreachable", payout.ErrKindWalletUnreachable, "wallet unreachable",
			fmt.Errorf("sendmany: %w", postErr(&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}))},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := &fakeWallet{send: func(map[string]int64, string) (string, error) { return "", c.err }}
			p := newTestProcessor(t, l, w)
			if err := p.RunOnce(ctx); err != nil {
				t.Fatalf("run: %v", err)
			}
			pay := lastPayment(t, l)
			if pay.State != payout.StateFailed || !strings.Contains(pay.Reason, c.reason) {
				t.Fatalf("payment %+v; want failed with %q", pay, c.reason)
			}
			if n := journalRows(t, l, "refund", pay.ID); n != 2 {
				t.Fatalf("%d refund journal rows, want 2", n)
			}
			mustBalance(t, l, "A", 0, 300_000, 0)
			mustBalance(t, l, "B", 0, 200_000, 0)
			st := p.Stats()
			if st.BatchesFailed != 1 || st.ErrorsByKind[c.kind] != 1 || st.LastSuccess.IsZero() {
				t.Fatalf("stats %+v; want one failed batch and one %s error", st, c.kind)
			}
			open, err := l.OpenBatches(ctx)
			if err != nil || len(open) != 0 {
				t.Fatalf("open batches: %+v, %v", open, err)
			}
		})
	}
	checkJournal(t, l)

	// A real client against a port nothing listens on is unreachable.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	wc, err := walletrpc.New(addr, "", "", walletrpc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := newTestProcessor(t, l, wc).RunOnce(ctx); err != nil {
		t.Fatalf("run with the wallet down: %v", err)
	}
	if pay := lastPayment(t, l); pay.State != payout.StateFailed || !strings.Contains(pay.Reason, "wallet unreachable") {
		t.Fatalf("wallet down: payment %+v", pay)
	}
	mustBalance(t, l, "A", 0, 300_000, 0)

	// A timeout after the request was written: the batch stays planned,
	// its money in paid, and nothing new is planned meanwhile.
	w := &fakeWallet{send: func(map[string]int64, string) (string, error) {
		return "", fmt.Errorf("sendmany: %w", postErr(timeoutError{}))
	}}
	p := newTestProcessor(t, l, w, func(c *payout.Config) { c.ResendGrace = time.Hour })
	if err := p.RunOnce(ctx); err == nil {
		t.Fatal("run with a sendmany timeout: no error")
	}
	pay := lastPayment(t, l)
	if pay.State != payout.StatePlanned {
		t.Fatalf("after a timeout: payment %+v; want planned", pay)
	}
	if st := p.Stats(); st.ErrorsByKind[payout.ErrKindWalletUnknownOutcome] != 1 || st.BatchesFailed != 0 || st.Errors != 1 {
		t.Fatalf("after a timeout: stats %+v", st)
	}
	mustBalance(t, l, "A", 0, 0, 300_000)
	if n := journalRows(t, l, "refund", pay.ID); n != 0 {
		t.Fatalf("%d refund rows for a batch that may have been sent", n)
	}
	// It had gone through: the wallet's history shows it (no comment,
	// btcwallet style), and reconciliation records it without sending.
	w.set(func(w *fakeWallet) {
		w.send = func(map[string]int64, string) (string, error) { return "", errors.New("must not be called") }
		w.history = []payout.WalletTx{{TxID: strings.Repeat("7", 64), Time: time.Now(),
			Outputs: map[string]int64{"A": 300_000, "B": 200_000}}}
	})
	if err := p.RunOnce(ctx); err != nil {
		t.Fatalf("reconciling run: %v", err)
	}
	if pay := lastPayment(t, l); pay.State != payout.StateSent || pay.TxID != strings.Repeat("7", 64) {
		t.Fatalf("after reconciliation: %+v", pay)
	}
	if w.sendCalls() != 1 {
		t.Fatalf("sendmany called %d times, want 1", w.sendCalls())
	}
	checkJournal(t, l)
}

// TestReconcileIgnoresOtherBatchesTransactions: a batch whose sendmany
// answer was lost must not be matched to an earlier batch's transaction
// that paid the same amounts to the same addresses, nor to an old
// transaction from before its own attempt.
func TestReconcileIgnoresOtherBatchesTransactions(t *testing.T) {
	l := newLedger(t)
	ctx := testCtx(t, 2*time.Minute)
	items := map[string]int64{"X": 1_000_000, "Y": 2_000_000}
	t1, t2 := strings.Repeat("1", 64), strings.Repeat("2", 64)
	older := strings.Repeat("0", 64)

	// Batch A pays X and Y with t1.
	fund(t, l, items)
	w := &fakeWallet{}
	w.set(func(w *fakeWallet) {
		w.send = paying(w, t1, 0)
		// An old transaction of the same amounts, from long before.
		w.history = []payout.WalletTx{{TxID: older, Time: time.Now().Add(-30 * time.Minute), Outputs: map[string]int64{"X": 1_000_000, "Y": 2_000_000}}}
	})
	p := newTestProcessor(t, l, w, func(c *payout.Config) { c.ResendGrace = time.Millisecond })
	if err := p.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if pay := lastPayment(t, l); pay.State != payout.StateSent || pay.TxID != t1 {
		t.Fatalf("batch A: %+v", pay)
	}

	// Batch B, the same amounts again: sendmany times out, and nothing
	// of B reached the wallet.
	fund(t, l, items)
	w.set(func(w *fakeWallet) {
		w.send = func(map[string]int64, string) (string, error) {
			return "", fmt.Errorf("sendmany: %w", context.DeadlineExceeded)
		}
	})
	if err := p.RunOnce(ctx); err == nil {
		t.Fatal("timeout: no error")
	}
	b := lastPayment(t, l)
	if b.State != payout.StatePlanned {
		t.Fatalf("batch B after the timeout: %+v", b)
	}
	// After the grace, B is looked for: t1 is A's, the old one predates
	// B's attempt. Neither is B: it is sent again.
	time.Sleep(20 * time.Millisecond)
	w.set(func(w *fakeWallet) { w.send = paying(w, t2, 0) })
	if err := p.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if pay := lastPayment(t, l); pay.ID != b.ID || pay.State != payout.StateSent || pay.TxID != t2 {
		t.Fatalf("batch B: %+v; want sent with %s", pay, t2)
	}
	if st := p.Stats(); st.BatchesReconciled != 0 {
		t.Fatalf("a batch was reconciled with a transaction that is not its own: %+v", st)
	}
	// The ledger refuses one txid for two batches whatever the caller.
	ps, err := l.Payments(ctx, 10, 0)
	if err != nil || len(ps) != 2 {
		t.Fatalf("payments: %+v, %v", ps, err)
	}
	if err := l.MarkSent(ctx, ps[1].ID, t2); err == nil {
		t.Fatal("two batches with one txid")
	}
	checkJournal(t, l)
}

// TestDroppedBatch: a sent batch whose transaction the wallet does not
// know, or reports conflicted, for DropAfter becomes dropped, keeps its
// items paid and is not resent; it still confirms if the transaction
// does, and an operator can refund it.
func TestDroppedBatch(t *testing.T) {
	l := newLedger(t)
	ctx := testCtx(t, 2*time.Minute)
	t1, t2 := strings.Repeat("a", 64), strings.Repeat("b", 64)
	const dropAfter = 200 * time.Millisecond

	fund(t, l, map[string]int64{"X": 500_000})
	w := &fakeWallet{}
	w.set(func(w *fakeWallet) { w.send = paying(w, t1, 0) })
	p := newTestProcessor(t, l, w, func(c *payout.Config) { c.DropAfter = dropAfter })
	if err := p.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	first := lastPayment(t, l)
	// The wallet forgets t1 (evicted from the mempool, say).
	w.set(func(w *fakeWallet) { delete(w.txs, t1) })
	if err := p.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if pay := lastPayment(t, l); pay.State != payout.StateSent {
		t.Fatalf("missing for less than DropAfter: %+v", pay)
	}
	time.Sleep(dropAfter + 50*time.Millisecond)
	if err := p.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	pay := lastPayment(t, l)
	if pay.State != payout.StateDropped || !strings.Contains(pay.Reason, "conflicted/dropped") {
		t.Fatalf("missing for longer than DropAfter: %+v", pay)
	}
	mustBalance(t, l, "X", 0, 0, 500_000) // still paid: nothing to resend
	if st := p.Stats(); st.BatchesDropped != 1 || st.ErrorsByKind[payout.ErrKindTxDropped] != 1 {
		t.Fatalf("stats %+v", st)
	}

	// A second batch conflicted (negative confirmations).
	fund(t, l, map[string]int64{"X": 400_000})
	w.set(func(w *fakeWallet) { w.send = paying(w, t2, 0) })
	if err := p.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	second := lastPayment(t, l)
	w.set(func(w *fakeWallet) { w.txs[t2] = payout.WalletTx{TxID: t2, Confirms: -3} })
	if err := p.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(dropAfter + 50*time.Millisecond)
	if err := p.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if pay := lastPayment(t, l); pay.ID != second.ID || pay.State != payout.StateDropped || !strings.Contains(pay.Reason, "conflicts") {
		t.Fatalf("conflicted: %+v", pay)
	}
	calls := w.sendCalls()
	if err := p.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if w.sendCalls() != calls || calls != 2 {
		t.Fatalf("sendmany called %d times after dropping (%d before), want no resend", w.sendCalls(), calls)
	}
	mustBalance(t, l, "X", 0, 0, 900_000)

	// t1 was mined after all: its batch confirms.
	w.set(func(w *fakeWallet) { w.txs[t1] = payout.WalletTx{TxID: t1, Confirms: 2, Fee: 300} })
	if err := p.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	ps, err := l.Payments(ctx, 10, 0)
	if err != nil || len(ps) != 2 || ps[1].ID != first.ID || ps[1].State != payout.StateConfirmed || ps[1].Fee != 300 {
		t.Fatalf("payments: %+v, %v", ps, err)
	}

	// The operator refunds the conflicted one: its items go back to
	// mature and the next batch pays them.
	if err := l.RefundDropped(ctx, first.BatchID, "x"); !errors.Is(err, ledger.ErrNotDropped) {
		t.Fatalf("refund of a confirmed batch: %v", err)
	}
	if err := l.RefundDropped(ctx, second.BatchID, "operator: conflicted, refunded"); err != nil {
		t.Fatal(err)
	}
	if pay := lastPayment(t, l); pay.State != payout.StateFailed || !strings.Contains(pay.Reason, "operator") ||
		!strings.Contains(pay.Reason, "conflicts") {
		t.Fatalf("refunded: %+v", pay)
	}
	if n := journalRows(t, l, "refund", second.ID); n != 1 {
		t.Fatalf("%d refund journal rows", n)
	}
	mustBalance(t, l, "X", 0, 400_000, 500_000)
	checkJournal(t, l)
}

// TestBlockTermsEnforced: a block carries the scheme and fee of the
// pool node that found it; a process configured for another scheme
// refuses to credit it, and one of the same scheme credits it with the
// fee it was found under.
func TestBlockTermsEnforced(t *testing.T) {
	l := newLedger(t)
	ctx := testCtx(t, 2*time.Minute)
	found := time.Now().Add(-time.Minute)

	// Shares for the PPLNS block below.
	bt := ledger.NewBatcher(l, ledger.BatcherOptions{FlushInterval: 10 * time.Millisecond, Logger: testLogger()})
	bctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = bt.Run(bctx); close(done) }()
	for i, a := range []string{"A", "B"} {
		bt.AddShare(record.Share{Time: found.Add(-time.Duration(10-i) * time.Second), Address: a, JobID: "j", Difficulty: 100, Height: 2}, nil)
	}
	for deadline := time.Now().Add(10 * time.Second); bt.Stats().SharesWritten < 2; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("shares not written")
		}
	}
	stop()
	<-done

	soloSink, err := l.TermsBlockSink(payout.Terms{Scheme: payout.SOLO, FeeBPS: 150})
	if err != nil {
		t.Fatal(err)
	}
	pplnsSink, err := l.TermsBlockSink(payout.Terms{Scheme: payout.PPLNS, FeeBPS: 200})
	if err != nil {
		t.Fatal(err)
	}
	soloHash, pplnsHash := strings.Repeat("5", 64), strings.Repeat("6", 64)
	if err := soloSink.RecordBlock(ctx, record.Block{Time: found.Add(-time.Hour), Height: 1, Hash: soloHash, Reward: 5_000_000_000,
		Address: "S", Accepted: true, Verdict: "accepted"}); err != nil {
		t.Fatal(err)
	}
	if err := pplnsSink.RecordBlock(ctx, record.Block{Time: found, Height: 2, Hash: strings.ToUpper(pplnsHash), Reward: 1_000_000,
		Address: "A", Accepted: true, Verdict: "accepted"}); err != nil {
		t.Fatal(err)
	}
	bs, err := l.UnsettledBlocks(ctx)
	if err != nil || len(bs) != 2 || bs[0].Terms == nil || *bs[0].Terms != (payout.Terms{Scheme: payout.SOLO, FeeBPS: 150}) ||
		bs[1].Terms == nil || *bs[1].Terms != (payout.Terms{Scheme: payout.PPLNS, FeeBPS: 200}) {
		t.Fatalf("unsettled blocks: %+v, %v", bs, err)
	}

	// A PPLNS process (the default of `hashforge payout run`) credits
	// the PPLNS block, with its 200 bps, and refuses the SOLO one.
	p := newTestProcessor(t, l, nil) // 100 bps configured
	err = p.RunOnce(ctx)
	if !errors.Is(err, payout.ErrSchemeMismatch) || !strings.Contains(err.Error(), "solo") {
		t.Fatalf("PPLNS run over a SOLO block: %v; want a scheme mismatch", err)
	}
	if st := p.Stats(); st.ErrorsByKind[payout.ErrKindSchemeMismatch] != 1 || st.BlocksCredited != 1 {
		t.Fatalf("stats %+v", st)
	}
	mustBalance(t, l, "S", 0, 0, 0)
	mustBalance(t, l, "fee", 20_000, 0, 0) // 1,000,000 × 200 / 10,000
	mustBalance(t, l, "A", 490_000, 0, 0)
	mustBalance(t, l, "B", 490_000, 0, 0)
	// The store refuses too, whoever asks.
	if err := l.CreditBlock(ctx, bs[0].ID, payout.Terms{Scheme: payout.PROP}, []payout.Credit{{Address: "S", Kind: payout.KindShare,
		Amount: 5_000_000_000}}); !errors.Is(err, payout.ErrSchemeMismatch) {
		t.Fatalf("CreditBlock under another scheme: %v", err)
	}
	mustBalance(t, l, "S", 0, 0, 0)

	// A SOLO process settles the SOLO block: credited with nothing.
	solo := newTestProcessor(t, l, nil, func(c *payout.Config) { c.Scheme, c.FeeBPS = payout.SOLO, 150 })
	if err := solo.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	var scheme string
	var fee int
	if err := l.Pool().QueryRow(ctx, `SELECT scheme, fee_bps FROM blocks WHERE hash = $1 AND credited_at IS NOT NULL`,
		soloHash).Scan(&scheme, &fee); err != nil || scheme != "solo" || fee != 150 {
		t.Fatalf("SOLO block: %s %d %v", scheme, fee, err)
	}
	mustBalance(t, l, "S", 0, 0, 0)
	checkJournal(t, l)
}

// mapChain answers BlockState from a set of main-chain hashes (every one
// with 1 confirmation) and a tip height.
type mapChain struct {
	mu   sync.Mutex
	main map[string]bool
	tip  int64
}

func (c *mapChain) BlockState(ctx context.Context, hash string, height int64) (payout.BlockState, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.main[strings.ToLower(hash)] {
		return payout.BlockState{TipHeight: c.tip}, nil
	}
	return payout.BlockState{InMainChain: true, Known: true, Confirmations: 1, TipHeight: c.tip, NetworkDifficulty: 1000}, nil
}

// TestPROPWaitsForOlderUnknownBlock: a block of unknown outcome may end the
// PROP round of the next block, so the next block is not credited until
// the older one is settled; found in the chain, each gets its own round.
func TestPROPWaitsForOlderUnknownBlock(t *testing.T) {
	l := newLedger(t)
	ctx := testCtx(t, 2*time.Minute)
	found := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	bt := ledger.NewBatcher(l, ledger.BatcherOptions{FlushInterval: 10 * time.Millisecond, Logger: testLogger()})
	bctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = bt.Run(bctx); close(done) }()
	bt.AddShare(record.Share{Time: found.Add(-20 * time.Second), Address: "A", JobID: "j", Difficulty: 1, Height: 10}, nil)
	bt.AddShare(record.Share{Time: found.Add(-5 * time.Second), Address: "B", JobID: "j", Difficulty: 1, Height: 11}, nil)
	stop()
	<-done
	older, newer := strings.Repeat("1a", 32), strings.Repeat("2b", 32)
	if err := l.RecordBlock(ctx, record.Block{Time: found.Add(-10 * time.Second), Height: 10, Hash: older, Reward: 1_000_000,
		Address: "A", Unknown: true, Verdict: "inconclusive"}); err != nil {
		t.Fatal(err)
	}
	if err := l.RecordBlock(ctx, record.Block{Time: found, Height: 11, Hash: newer, Reward: 1_000_000,
		Address: "B", Accepted: true, Verdict: "accepted"}); err != nil {
		t.Fatal(err)
	}
	chain := &mapChain{main: map[string]bool{newer: true}, tip: 12}
	p, err := payout.New(payout.Config{Scheme: payout.PROP, FeeBPS: 100, FeeAddress: "fee", Logger: testLogger()}, l, chain, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.SettleBlocks(ctx); err != nil {
		t.Fatal(err)
	}
	mustBalance(t, l, "A", 0, 0, 0)
	mustBalance(t, l, "B", 0, 0, 0)

	chain.mu.Lock()
	chain.main[older] = true
	chain.mu.Unlock()
	if err := p.SettleBlocks(ctx); err != nil {
		t.Fatal(err)
	}
	mustBalance(t, l, "A", 990_000, 0, 0)
	mustBalance(t, l, "B", 990_000, 0, 0)
	mustBalance(t, l, "fee", 20_000, 0, 0)
	checkJournal(t, l)
}
