package devstack_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hashforge/hashforge/internal/devstack"
	"github.com/hashforge/hashforge/internal/devstack/devtest"
)

// TestBtcwalletSimnet starts btcd in simnet and btcwallet against it, and
// checks it answers, gives simnet addresses and follows the node.
func TestBtcwalletSimnet(t *testing.T) {
	btcd := devtest.Btcd(t, devstack.BtcdOptions{Network: "simnet"})
	w := devtest.Btcwallet(t, devstack.BtcwalletOptions{Btcd: btcd})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var addr string
	if err := w.Call(ctx, "getnewaddress", nil, &addr); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(addr, "S") {
		t.Fatalf("simnet wallet address %q", addr)
	}
	// The wallet follows the node: blocks mined now are processed.
	if _, err := btcd.Generate(ctx, 5); err != nil {
		t.Fatal(err)
	}
	if err := w.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	var balance float64
	if err := w.Call(ctx, "getbalance", nil, &balance); err != nil || balance != 0 {
		t.Fatalf("getbalance of a new wallet = %v, %v", balance, err)
	}
}
