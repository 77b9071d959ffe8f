package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/address/v2"

	"github.com/hashforge/hashforge/internal/devstack"
	"github.com/hashforge/hashforge/internal/devstack/devtest"
	"github.com/hashforge/hashforge/ledger"
	"github.com/hashforge/hashforge/payout"
	"github.com/hashforge/hashforge/pool"
	"github.com/hashforge/hashforge/pool/node"
	"github.com/hashforge/hashforge/record"
)

func openPayoutLedger(t *testing.T, ctx context.Context, db string) *ledger.Ledger {
	t.Helper()
	led, err := ledger.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(led.Close)
	if _, err := led.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return led
}

// TestPayoutSchemeWiring: serve takes the SOLO coinbase, the PPS share
// credits and the terms blocks are recorded with from the scheme as
// parsed (case and spaces do not matter), not from the raw flag text.
func TestPayoutSchemeWiring(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	led := openPayoutLedger(t, ctx, devtest.Postgres(t))
	params, err := pool.ParseNetwork("regtest")
	if err != nil {
		t.Fatal(err)
	}
	rpc, err := node.New("http://127.0.0.1:1", "", "")
	if err != nil {
		t.Fatal(err)
	}
	a, err := address.NewAddressPubKeyHash(make([]byte, 20), params)
	if err != nil {
		t.Fatal(err)
	}
	poolAddr := a.EncodeAddress()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for i, c := range []struct {
		flag      string
		scheme    payout.Scheme
		solo, pps bool
	}{
		{" SOLO ", payout.SOLO, true, false},
		{"Pps", payout.PPS, false, true},
		{"PROP\n", payout.PROP, false, false},
		{"", payout.PPLNS, false, false},
	} {
		pc := payoutConfig{Scheme: c.flag, FeeBPS: 150}
		w, err := pc.setup(led, rpc, params, poolAddr, log)
		if err != nil {
			t.Fatalf("%q: %v", c.flag, err)
		}
		p := w.Processor
		blocks, onBatch, err := ledgerHooks(w, led)
		if err != nil {
			t.Fatalf("%q: %v", c.flag, err)
		}
		if p.Config().Scheme != c.scheme || w.Solo != c.solo || (onBatch != nil) != c.pps {
			t.Fatalf("--payout-scheme %q: scheme %s, solo %v, PPS hook %v", c.flag, p.Config().Scheme, w.Solo, onBatch != nil)
		}
		if c.solo {
			if w.SoloSplit == nil || w.SoloFeeAddress != poolAddr {
				t.Fatalf("SOLO fee to %q, want 150 bps to the pool address", w.SoloFeeAddress)
			}
			if finder, fee, err := w.SoloSplit(1_000_000); err != nil || fee != 15_000 || finder != 985_000 {
				t.Fatalf("SOLO split of 1,000,000 sat: finder %d, fee %d, %v; want 150 bps", finder, fee, err)
			}
		}
		// Found blocks are recorded with the parsed scheme and fee.
		hash := strings.Repeat(strconv.Itoa(i+1), 64)
		if err := blocks.RecordBlock(ctx, record.Block{Time: time.Now(), Height: int64(i + 1), Hash: hash, Reward: 1,
			Address: poolAddr, Accepted: true, Verdict: "accepted"}); err != nil {
			t.Fatal(err)
		}
		bs, err := led.UnsettledBlocks(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if b := bs[len(bs)-1]; b.Hash != hash || b.Terms == nil || *b.Terms != (payout.Terms{Scheme: c.scheme, FeeBPS: 150}) {
			t.Fatalf("--payout-scheme %q: block recorded with %+v", c.flag, b.Terms)
		}
	}
}

// TestPayoutCommands runs `payout run`, `payout status` and `payout
// refund` against a real database and node (the payment path itself is
// tested in package payout).
func TestPayoutCommands(t *testing.T) {
	btcd := devtest.Btcd(t, devstack.BtcdOptions{})
	db := devtest.Postgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	led := openPayoutLedger(t, ctx, db)
	run := func(args ...string) error {
		return cmdPayout(append([]string{"run", "--database-url", db, "--node-url", btcd.RPCURL(), "--network", "regtest"}, args...))
	}
	if err := run("--pool-fee-bps", "100", "--fee-address", btcd.MiningAddr); err != nil {
		t.Fatalf("payout run: %v", err)
	}
	// The fee address defaults to --pool-address, as in serve.
	if err := run("--pool-address", btcd.MiningAddr); err != nil {
		t.Fatalf("payout run with --pool-address only: %v", err)
	}
	if err := run(); err == nil || !strings.Contains(err.Error(), "fee address") {
		t.Fatalf("payout run with a fee and no address: %v", err)
	}
	if err := run("--payout-scheme", "fpps"); err == nil || !strings.Contains(err.Error(), "fpps") {
		t.Fatalf("unknown scheme: %v", err)
	}
	if err := cmdPayout(nil); err == nil {
		t.Fatal("payout without a subcommand: no error")
	}

	// A block a SOLO pool found (the node's block 1): a PPLNS `payout
	// run` must refuse it, a SOLO one settles it.
	nc, err := node.New(btcd.RPCURL(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	hash, err := nc.GetBlockHash(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	sink, err := led.TermsBlockSink(payout.Terms{Scheme: payout.SOLO, FeeBPS: 150})
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.RecordBlock(ctx, record.Block{Time: time.Now().Add(-time.Hour), Height: 1, Hash: hash, Reward: 5_000_000_000,
		Address: btcd.MiningAddr, Accepted: true, Verdict: "accepted"}); err != nil {
		t.Fatal(err)
	}
	err = run("--pool-address", btcd.MiningAddr)
	if !errors.Is(err, payout.ErrSchemeMismatch) || !strings.Contains(err.Error(), "solo") {
		t.Fatalf("PPLNS payout run over a SOLO block: %v; want a scheme mismatch", err)
	}
	if bs, err := led.UnsettledBlocks(ctx); err != nil || len(bs) != 1 || bs[0].Credited {
		t.Fatalf("after the refused run: %+v, %v", bs, err)
	}
	if b, err := led.Balance(ctx, btcd.MiningAddr); err != nil || b.Immature+b.Mature+b.Paid != 0 {
		t.Fatalf("SOLO finder credited: %+v, %v", b, err)
	}
	if err := run("--payout-scheme", " SOLO ", "--pool-address", btcd.MiningAddr); err != nil {
		t.Fatalf("SOLO payout run: %v", err)
	}
	if bs, err := led.UnsettledBlocks(ctx); err != nil || len(bs) != 1 || !bs[0].Credited {
		t.Fatalf("after the SOLO run: %+v, %v", bs, err)
	}

	// Balances and batches for status, and a dropped batch to refund.
	fundAddr := func(h int64, addr string, amount int64) {
		t.Helper()
		bh := strings.Repeat("0", 56) + strconv.FormatInt(0x10000000+h, 16)
		if err := led.RecordBlock(ctx, record.Block{Time: time.Now().Add(-time.Hour), Height: h, Hash: bh, Reward: amount,
			Address: addr, Accepted: true, Verdict: "accepted"}); err != nil {
			t.Fatal(err)
		}
		bs, err := led.UnsettledBlocks(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range bs {
			if b.Hash == bh {
				if err := led.CreditBlock(ctx, b.ID, payout.Terms{Scheme: payout.PROP},
					[]payout.Credit{{Address: addr, Kind: payout.KindShare, Amount: amount}}); err != nil {
					t.Fatal(err)
				}
				if err := led.MatureBlock(ctx, b.ID, 100); err != nil {
					t.Fatal(err)
				}
				return
			}
		}
		t.Fatalf("block %s not recorded", bh)
	}
	fundAddr(500, "minerA", 70_000_000)
	failed, err := led.PlanBatch(ctx, "0190a0f0-0000-7000-8000-0000000000a1", 1_000_000, 10)
	if err != nil || failed == nil {
		t.Fatalf("plan: %+v, %v", failed, err)
	}
	if err := led.FailBatch(ctx, failed.ID, "wallet unreachable: connection refused"); err != nil {
		t.Fatal(err)
	}
	dropped, err := led.PlanBatch(ctx, "0190a0f0-0000-7000-8000-0000000000a2", 1_000_000, 10)
	if err != nil || dropped == nil {
		t.Fatalf("plan: %+v, %v", dropped, err)
	}
	txid := strings.Repeat("d", 64)
	if err := led.MarkSent(ctx, dropped.ID, txid); err != nil {
		t.Fatal(err)
	}
	if err := led.DropBatch(ctx, dropped.ID, "conflicted/dropped: test"); err != nil {
		t.Fatal(err)
	}
	fundAddr(501, "minerB", 2_500_000) // stays mature

	var out bytes.Buffer
	if err := printPayoutStatus(ctx, &out, led, 20); err != nil {
		t.Fatal(err)
	}
	t.Logf("payout status:\n%s", out.String())
	rows := map[string][]string{} // first field → fields
	section := ""
	for _, line := range strings.Split(out.String(), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "BALANCES", "PENDING", "PAYMENT":
			section = f[0]
			continue
		}
		rows[section+" "+f[0]] = f
	}
	for key, want := range map[string][]string{
		"BALANCES minerA": {"minerA", "0", "0", "70000000"},
		"BALANCES minerB": {"minerB", "0", "2500000", "0"},
		"PENDING 1":       {"1", hash, "5000000000", "solo/150bps", "true"},
		"PAYMENT 0190a0f0-0000-7000-8000-0000000000a1": {"0190a0f0-0000-7000-8000-0000000000a1", "failed", "1", "70000000", "0", "wallet", "unreachable:", "connection", "refused"},
		"PAYMENT 0190a0f0-0000-7000-8000-0000000000a2": {"0190a0f0-0000-7000-8000-0000000000a2", "dropped", "1", "70000000", "0", txid, "conflicted/dropped:", "test"},
	} {
		if got := rows[key]; strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("status row %q = %q, want %q", key, got, want)
		}
	}
	if err := cmdPayout([]string{"status", "--database-url", db}); err != nil {
		t.Fatalf("payout status: %v", err)
	}

	// The operator refunds the dropped batch.
	if err := cmdPayout([]string{"refund", "--database-url", db, "--batch", failed.BatchID}); !errors.Is(err, ledger.ErrNotDropped) {
		t.Fatalf("refund of a failed batch: %v", err)
	}
	if err := cmdPayout([]string{"refund", "--database-url", db, "--batch", dropped.BatchID}); err != nil {
		t.Fatalf("payout refund: %v", err)
	}
	if b, err := led.Balance(ctx, "minerA"); err != nil || b.Mature != 70_000_000 || b.Paid != 0 {
		t.Fatalf("minerA after the refund: %+v, %v", b, err)
	}
	if bad, err := led.CheckJournal(ctx); err != nil || len(bad) > 0 {
		t.Fatalf("journal: %v, %v", bad, err)
	}
}
