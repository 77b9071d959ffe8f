package main

import (
	"strings"
	"testing"

	"github.com/hashforge/hashforge/internal/devstack"
	"github.com/hashforge/hashforge/internal/devstack/devtest"
)

// TestPayoutCommands runs `payout run` and `payout status` against a real
// database and node (the payment path itself is tested in package payout).
func TestPayoutCommands(t *testing.T) {
	btcd := devtest.Btcd(t, devstack.BtcdOptions{})
	db := devtest.Postgres(t)
	if err := cmdPayout([]string{"run", "--database-url", db, "--node-url", btcd.RPCURL(), "--network", "regtest",
		"--pool-fee-bps", "100", "--fee-address", btcd.MiningAddr}); err != nil {
		t.Fatalf("payout run: %v", err)
	}
	if err := cmdPayout([]string{"status", "--database-url", db}); err != nil {
		t.Fatalf("payout status: %v", err)
	}
	err := cmdPayout([]string{"run", "--database-url", db, "--node-url", btcd.RPCURL(), "--network", "regtest",
		"--payout-scheme", "fpps"})
	if err == nil || !strings.Contains(err.Error(), "fpps") {
		t.Fatalf("unknown scheme: %v", err)
	}
	if err := cmdPayout(nil); err == nil {
		t.Fatal("payout without a subcommand: no error")
	}
}
