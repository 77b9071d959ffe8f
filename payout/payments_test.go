package payout_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/address/v2"
	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/chaincfg/v2"

	"github.com/hashforge/hashforge/internal/devstack"
	"github.com/hashforge/hashforge/internal/devstack/devtest"
	"github.com/hashforge/hashforge/ledger"
	"github.com/hashforge/hashforge/payout"
	"github.com/hashforge/hashforge/payout/nodechain"
	"github.com/hashforge/hashforge/payout/walletrpc"
	"github.com/hashforge/hashforge/pool"
	"github.com/hashforge/hashforge/pool/node"
	"github.com/hashforge/hashforge/stratum"
)

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// newSimnetAddress is a P2PKH simnet address of a fresh key: a miner's
// payout address outside the pool's wallet.
func newSimnetAddress(t *testing.T) string {
	t.Helper()
	k, err := btcec.NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	a, err := address.NewAddressPubKeyHash(address.Hash160(k.PubKey().SerializeCompressed()), &chaincfg.SimNetParams)
	if err != nil {
		t.Fatal(err)
	}
	return a.EncodeAddress()
}

func dsha(b []byte) [32]byte {
	h := sha256.Sum256(b)
	return sha256.Sum256(h[:])
}

// miner is a minimal Stratum miner, independent of package pool's share
// code, that finds blocks on simnet (where nearly any hash is one).
type miner struct {
	t    *testing.T
	c    *stratum.Client
	en1  []byte
	en2  []byte
	user string
	diff float64
}

func dialMiner(t *testing.T, ctx context.Context, addr, user string) *miner {
	t.Helper()
	c, err := stratum.Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	res, err := c.Call(ctx, "mining.subscribe", []any{"payout-test/1"})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := stratum.ParseSubscribeResult(res)
	if err != nil {
		t.Fatal(err)
	}
	en1, _ := hex.DecodeString(sub.Extranonce1)
	m := &miner{t: t, c: c, en1: en1, en2: make([]byte, sub.Extranonce2Size), user: user}
	if res, err := c.Call(ctx, "mining.authorize", []any{user, "x"}); err != nil || string(res) != "true" {
		t.Fatalf("authorize %s: %s %v", user, res, err)
	}
	return m
}

// job waits for a mining.notify whose previous block is prev (any when
// prev is "").
func (m *miner) job(ctx context.Context, prevNotify string) stratum.NotifyParams {
	m.t.Helper()
	var last *stratum.NotifyParams
	for {
		select {
		case n, ok := <-m.c.Notifications():
			if !ok {
				m.t.Fatalf("stratum connection closed: %v", m.c.Err())
			}
			raw, _ := n.Params.(json.RawMessage)
			switch n.Method {
			case "mining.notify":
				var p stratum.NotifyParams
				if err := json.Unmarshal(raw, &p); err != nil {
					m.t.Fatal(err)
				}
				last = &p
				if p.PrevHash != prevNotify {
					return p
				}
			}
		case <-time.After(20 * time.Second):
			if last != nil && prevNotify == "" {
				return *last
			}
			m.t.Fatalf("no new job from the pool (last %+v)", last)
		case <-ctx.Done():
			m.t.Fatal(ctx.Err())
		}
	}
}

// mineBlock solves the job at the network target and submits it.
func (m *miner) mineBlock(ctx context.Context, j stratum.NotifyParams) {
	m.t.Helper()
	c1, _ := hex.DecodeString(j.Coinb1)
	c2, _ := hex.DecodeString(j.Coinb2)
	m.en2[0]++
	root := dsha(append(append(append(c1, m.en1...), m.en2...), c2...))
	for _, b := range j.MerkleBranch {
		bb, _ := hex.DecodeString(b)
		root = dsha(append(root[:], bb...))
	}
	prev, _ := hex.DecodeString(j.PrevHash)
	for i := 0; i < 32; i += 4 {
		prev[i], prev[i+1], prev[i+2], prev[i+3] = prev[i+3], prev[i+2], prev[i+1], prev[i]
	}
	be := func(s string) uint32 {
		v, err := strconv.ParseUint(s, 16, 32)
		if err != nil {
			m.t.Fatal(err)
		}
		return uint32(v)
	}
	bits := be(j.NBits)
	target := new(big.Int).Lsh(big.NewInt(int64(bits&0xffffff)), 8*(uint(bits>>24)-3))
	h := make([]byte, 80)
	binary.LittleEndian.PutUint32(h[0:], be(j.Version))
	copy(h[4:], prev)
	copy(h[36:], root[:])
	binary.LittleEndian.PutUint32(h[68:], be(j.NTime))
	binary.LittleEndian.PutUint32(h[72:], bits)
	for nonce := uint32(0); ; nonce++ {
		binary.LittleEndian.PutUint32(h[76:], nonce)
		hash := dsha(h)
		for i, k := 0, 31; i < k; i, k = i+1, k-1 {
			hash[i], hash[k] = hash[k], hash[i]
		}
		if new(big.Int).SetBytes(hash[:]).Cmp(target) <= 0 {
			res, err := m.c.Call(ctx, "mining.submit", []any{m.user, j.JobID, hex.EncodeToString(m.en2), j.NTime,
				hex.EncodeToString(binary.BigEndian.AppendUint32(nil, nonce))})
			if err != nil || string(res) != "true" {
				m.t.Fatalf("block share refused: %s %v", res, err)
			}
			return
		}
	}
}

// startPool runs the pool core, a Stratum listener and the share batcher,
// in process, on a real node and database.
func startPool(t *testing.T, ctx context.Context, btcd *devstack.Btcd, l *ledger.Ledger, poolAddr string, tweak ...func(*pool.Config)) string {
	t.Helper()
	rpc, err := node.New(btcd.RPCURL(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	log := testLogger()
	batcher := ledger.NewBatcher(l, ledger.BatcherOptions{FlushInterval: 20 * time.Millisecond, Logger: log})
	cfg := pool.Config{Network: btcd.Params, PoolAddress: poolAddr, CoinbaseTag: "/payout-test/",
		MinDifficulty: 1e-12, StartDifficulty: 1e-12, Logger: log}
	for _, f := range tweak {
		f(&cfg)
	}
	srv, err := pool.NewServer(cfg, rpc, batcher, l)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	bctx, stopBatcher := context.WithCancel(context.WithoutCancel(ctx))
	templates := make(chan *node.Template, 4)
	done := make(chan struct{}, 4)
	go func() { rpc.WatchTemplates(ctx, node.WatchOptions{Logger: log}, templates); done <- struct{}{} }()
	go func() { _ = srv.Run(ctx, templates); done <- struct{}{} }()
	go func() {
		_ = (&stratum.Server{Handler: srv, Logger: log}).Serve(ctx, ln)
		done <- struct{}{}
	}()
	go func() { _ = batcher.Run(bctx); done <- struct{}{} }()
	t.Cleanup(func() {
		cancel()
		for range 3 {
			<-done
		}
		stopBatcher()
		<-done
	})
	return ln.Addr().String()
}

type chainTx struct {
	TxID string `json:"txid"`
	Vout []struct {
		Value        json.Number `json:"value"`
		ScriptPubKey struct {
			Addresses []string `json:"addresses"`
			Address   string   `json:"address"`
		} `json:"scriptPubKey"`
	} `json:"vout"`
}

// received sums, over the transactions of the main-chain blocks from
// height from on, what each address got, per transaction id.
func received(t *testing.T, ctx context.Context, nc *node.Client, from int64) map[string]map[string]int64 {
	t.Helper()
	tip, err := nc.GetBlockCount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]int64{} // txid → address → sat
	for h := from; h <= tip; h++ {
		hash, err := nc.GetBlockHash(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		var blk struct {
			Tx    []json.RawMessage `json:"tx"`
			RawTx []chainTx         `json:"rawtx"` // btcd's name at verbosity 2
		}
		if err := nc.GetBlock(ctx, hash, 2, &blk); err != nil {
			t.Fatal(err)
		}
		txs := blk.RawTx
		if len(txs) == 0 {
			for _, raw := range blk.Tx {
				var tx chainTx
				if json.Unmarshal(raw, &tx) == nil {
					txs = append(txs, tx)
				}
			}
		}
		for _, tx := range txs[1:] { // skip the coinbase
			m := map[string]int64{}
			for _, o := range tx.Vout {
				a := o.ScriptPubKey.Address
				if a == "" && len(o.ScriptPubKey.Addresses) == 1 {
					a = o.ScriptPubKey.Addresses[0]
				}
				v, err := walletrpc.ParseBTC(string(o.Value))
				if err != nil {
					t.Fatal(err)
				}
				m[a] += v
			}
			out[tx.TxID] = m
		}
	}
	return out
}

// TestPaymentsThroughRealWallet mines blocks through the pool (btcd and
// btcwallet in simnet, the coinbase to a wallet address), matures them,
// pays the miners with sendmany while crashing the payout run at every
// step, mines the payments and checks on chain that every miner got
// exactly what the ledger says, once.
func TestPaymentsThroughRealWallet(t *testing.T) {
	ctx := testCtx(t, 6*time.Minute)
	btcd := devtest.Btcd(t, devstack.BtcdOptions{Network: "simnet"})
	bw := devtest.Btcwallet(t, devstack.BtcwalletOptions{Btcd: btcd})
	l := newLedger(t)
	nc, err := node.New(btcd.RPCURL(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	wallet, err := walletrpc.New(bw.RPCURL(), "", "", walletrpc.Options{Account: "default"})
	if err != nil {
		t.Fatal(err)
	}
	poolAddr, err := wallet.NewAddress(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// btcwallet's answer for a transaction it does not know.
	if _, err := wallet.Transaction(ctx, strings.Repeat("00", 32)); !errors.Is(err, payout.ErrTxNotFound) {
		t.Fatalf("gettransaction of an unknown txid: %v; want ErrTxNotFound", err)
	}
	feeAddr := newSimnetAddress(t)
	miners := []string{newSimnetAddress(t), newSimnetAddress(t), newSimnetAddress(t)}

	// Mine six blocks through the pool, two per miner, in turn.
	stratumAddr := startPool(t, ctx, btcd, l, poolAddr)
	var ms []*miner
	for i, a := range miners {
		ms = append(ms, dialMiner(t, ctx, stratumAddr, a+".rig"+strconv.Itoa(i)))
	}
	cur := make([]stratum.NotifyParams, len(ms))
	for i, m := range ms {
		cur[i] = m.job(ctx, "")
	}
	for range 2 {
		for i, m := range ms {
			j := cur[i]
			m.mineBlock(ctx, j)
			// Every miner moves to the new tip before the next one mines.
			for k, o := range ms {
				cur[k] = o.job(ctx, j.PrevHash)
			}
		}
	}
	var blocks []ledger.BlockRow
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if blocks, err = l.RecentBlocks(ctx, 100, 0); err != nil {
			t.Fatal(err)
		}
		if len(blocks) == 6 || time.Now().After(deadline) {
			break
		}
	}
	if len(blocks) != 6 {
		t.Fatalf("ledger has %d blocks, want 6: %+v", len(blocks), blocks)
	}
	var rewards int64
	for _, b := range blocks {
		if !b.Accepted {
			t.Fatalf("block refused: %+v", b)
		}
		rewards += b.Reward
	}

	// Mature them.
	if _, err := nc.Generate(ctx, 100); err != nil {
		t.Fatal(err)
	}
	if err := bw.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}

	cfg := payout.Config{Scheme: payout.PPLNS, FeeBPS: 100, FeeAddress: feeAddr,
		Threshold:     4_00000000, // above the fee address's 3 BTC: that stays as the wallet's reserve for fees
		MaxItems:      1,          // one miner per batch, so each crash scenario has its own batch
		Confirmations: 1, Logger: testLogger()}
	newProc := func(hook func(string, *payout.Batch) error) *payout.Processor {
		c := cfg
		payout.SetStepHook(&c, hook)
		p, err := payout.New(c, l, nodechain.Chain{Node: nc}, wallet)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	// Credit and mature only (no wallet): what the miners are owed.
	settle, err := payout.New(cfg, l, nodechain.Chain{Node: nc}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := settle.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	owed := map[string]int64{}
	var sum int64
	for _, a := range append([]string{feeAddr}, miners...) {
		b, err := l.Balance(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		if b.Immature != 0 || b.Paid != 0 {
			t.Fatalf("after maturity %s has %+v", a, b)
		}
		owed[a] = b.Mature
		sum += b.Mature
	}
	if sum != rewards {
		t.Fatalf("credits sum to %d, the blocks' rewards to %d", sum, rewards)
	}
	if fee, _ := payout.PoolFee(50_00000000, 100); owed[feeAddr] != 6*fee {
		t.Fatalf("fee address owed %d, want %d", owed[feeAddr], 6*fee)
	}
	t.Logf("owed: %v", owed)

	crash := func(at string) func(string, *payout.Batch) error {
		return func(step string, b *payout.Batch) error {
			if step == at {
				return errors.New("simulated crash after " + step)
			}
			return nil
		}
	}

	// 1. The wallet is locked: the batch fails, balances are intact.
	if err := bw.Call(ctx, "walletlock", nil, nil); err != nil {
		t.Fatal(err)
	}
	p := newProc(nil)
	if err := p.RunOnce(ctx); err != nil {
		t.Fatalf("run with a locked wallet: %v", err)
	}
	if st := p.Stats(); st.BatchesFailed != 1 || st.BatchesSent != 0 {
		t.Fatalf("locked wallet: stats %+v", st)
	}
	for a, v := range owed {
		mustBalance(t, l, a, 0, v, 0)
	}
	ps, _ := l.Payments(ctx, 10, 0)
	if len(ps) != 1 || ps[0].State != payout.StateFailed || ps[0].Reason == "" {
		t.Fatalf("payments after the locked run: %+v", ps)
	}
	t.Logf("locked wallet: %s", ps[0].Reason)
	if err := bw.Call(ctx, "walletpassphrase", []any{devstack.BtcwalletPassphrase, 0}, nil); err != nil {
		t.Fatal(err)
	}

	startHeight, err := nc.GetBlockCount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// 2.–4. Crash after planning, after sendmany (txid not stored), after
	// storing; a fresh processor on the same database and wallet then
	// finishes the job.
	for _, at := range []string{"planned", "sent", "stored"} {
		hook := crash(at)
		if at == "sent" {
			// Here the holder dies as a killed pool node does: the money
			// is sent, the txid not stored, and its database session (and
			// with it the payout lock) is gone. Until then another node's
			// run finds the lock taken and does nothing.
			hook = func(step string, b *payout.Batch) error {
				if step != at {
					return nil
				}
				other := newProc(nil)
				if err := other.RunOnce(ctx); err != nil {
					return fmt.Errorf("other node's run while the lock is held: %w", err)
				}
				if st := other.Stats(); st.BatchesPlanned != 0 || st.BatchesSent != 0 || st.BlocksCredited != 0 {
					return fmt.Errorf("another node paid while the holder ran: %+v", st)
				}
				var killed int
				if err := l.Pool().QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_locks
					WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()`).Scan(&killed); err != nil || killed != 1 {
					return fmt.Errorf("killing the lock holder's session: %d sessions, %v", killed, err)
				}
				// pg_terminate_backend only signals: the lock goes when
				// the session has ended.
				for held := 1; held > 0; time.Sleep(10 * time.Millisecond) {
					if err := l.Pool().QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted`).Scan(&held); err != nil {
						return err
					}
				}
				return errors.New("simulated crash: the node died after " + step)
			}
		}
		if err := newProc(hook).RunOnce(ctx); err == nil || !strings.Contains(err.Error(), "simulated crash") {
			t.Fatalf("crash after %s: run returned %v", at, err)
		}
		if err := newProc(nil).RunOnce(ctx); err != nil {
			t.Fatalf("recovery after a crash after %s: %v", at, err)
		}
		open, err := l.OpenBatches(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range open {
			if b.State == payout.StatePlanned {
				t.Fatalf("after recovering from a crash after %s a batch is still planned: %+v", at, b)
			}
		}
		// Mine the payment: the wallet spends confirmed coins only
		// (minconf 1), and its change is the next batch's money.
		if _, err := nc.Generate(ctx, 1); err != nil {
			t.Fatal(err)
		}
		if err := bw.WaitSynced(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// A run with nothing due does nothing.
	p = newProc(nil)
	if err := p.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.BatchesPlanned != 0 || st.BatchesSent != 0 {
		t.Fatalf("idle run: %+v", st)
	}

	// Confirm the last payment.
	if err := newProc(nil).RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	ps, err = l.Payments(ctx, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	txids := map[string]bool{}
	confirmed := 0
	for _, p := range ps {
		if p.State == payout.StateConfirmed {
			confirmed++
			txids[p.TxID] = true
			if p.Fee <= 0 {
				t.Errorf("confirmed payment without its network fee: %+v", p)
			}
		}
	}
	if confirmed != 3 || len(ps) != 4 {
		t.Fatalf("payments: %+v", ps)
	}

	// On chain: each miner got exactly its balance, once; nothing else
	// left the wallet.
	onChain := received(t, ctx, nc, startHeight+1)
	got := map[string]int64{}
	for txid, outs := range onChain {
		if !txids[txid] {
			t.Fatalf("unexpected transaction %s on chain: %v", txid, outs)
		}
		for a, v := range outs {
			got[a] += v
		}
	}
	if len(onChain) != 3 {
		t.Fatalf("%d payment transactions on chain, want 3", len(onChain))
	}
	for _, a := range miners {
		if got[a] != owed[a] {
			t.Errorf("miner %s received %d on chain, the ledger owed %d", a, got[a], owed[a])
		}
		mustBalance(t, l, a, 0, 0, owed[a])
		items, err := l.PaymentsTo(ctx, a, 10)
		if err != nil {
			t.Fatal(err)
		}
		var paid int64
		for _, it := range items {
			if it.State == payout.StateConfirmed {
				paid += it.Amount
			}
		}
		if paid != owed[a] {
			t.Errorf("PaymentsTo(%s) confirmed %d, want %d", a, paid, owed[a])
		}
	}
	if got[feeAddr] != 0 {
		t.Errorf("fee address paid %d below the threshold", got[feeAddr])
	}
	mustBalance(t, l, feeAddr, 0, owed[feeAddr], 0)
	// Any other output is change back to the wallet.
	for a := range got {
		if a == feeAddr || a == miners[0] || a == miners[1] || a == miners[2] {
			continue
		}
		var v struct {
			IsMine bool `json:"ismine"`
		}
		if err := bw.Call(ctx, "validateaddress", []any{a}, &v); err != nil || !v.IsMine {
			t.Errorf("payment output to %s, neither a miner nor the wallet's change (%v)", a, err)
		}
	}
	if bad, err := l.CheckJournal(ctx); err != nil || len(bad) > 0 {
		t.Fatalf("journal check: %v, %v", bad, err)
	}
}
