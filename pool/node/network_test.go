package node

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chaincfg/v2"
)

func TestChainMatches(t *testing.T) {
	params := map[string]*chaincfg.Params{
		"mainnet":  &chaincfg.MainNetParams,
		"testnet3": &chaincfg.TestNet3Params,
		"testnet4": &chaincfg.TestNet4Params,
		"signet":   &chaincfg.SigNetParams,
		"regtest":  &chaincfg.RegressionNetParams,
		"simnet":   &chaincfg.SimNetParams,
	}
	// What each node family's getblockchaininfo says, and the one network
	// it must match.
	chains := map[string]string{
		// Bitcoin Core
		"main":     "mainnet",
		"test":     "testnet3",
		"testnet4": "testnet4",
		"signet":   "signet",
		"regtest":  "regtest",
		// btcd
		"mainnet":  "mainnet",
		"testnet3": "testnet3",
		"simnet":   "simnet",
		// unknown chains match nothing
		"":        "",
		"liquid":  "",
		"Regtest": "",
	}
	for chain, want := range chains {
		for name, p := range params {
			if got := ChainMatches(chain, p); got != (name == want) {
				t.Errorf("ChainMatches(%q, %s) = %v, want %v", chain, name, got, !got)
			}
		}
	}
	if ChainMatches("regtest", nil) {
		t.Error("ChainMatches with nil params")
	}
}

func TestCheckNetwork(t *testing.T) {
	ctx := context.Background()
	f := &fakeCore{t: t, results: map[string]any{"getblockchaininfo": map[string]any{"chain": "main", "blocks": 900000}}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	c, err := New(srv.URL, "alice", "secret")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CheckNetwork(ctx, &chaincfg.MainNetParams); err != nil {
		t.Fatalf("Core main vs mainnet: %v", err)
	}
	err = c.CheckNetwork(ctx, &chaincfg.RegressionNetParams)
	var mm *NetworkMismatchError
	if !errors.As(err, &mm) || mm.NodeChain != "main" || mm.Want != "regtest" ||
		!strings.Contains(err.Error(), "mainnet") || !strings.Contains(err.Error(), "regtest") || strings.Contains(err.Error(), "secret") {
		t.Fatalf("mainnet node, regtest pool: %v", err)
	}

	// An unknown chain is refused, naming it.
	f2 := &fakeCore{t: t, results: map[string]any{"getblockchaininfo": map[string]any{"chain": "liquidv1"}}}
	srv2 := httptest.NewServer(f2)
	defer srv2.Close()
	c2, _ := New(srv2.URL, "alice", "secret")
	if err := c2.CheckNetwork(ctx, &chaincfg.MainNetParams); !errors.As(err, &mm) || !strings.Contains(err.Error(), `"liquidv1"`) {
		t.Fatalf("unknown chain: %v", err)
	}
}

// flakyNode fails the first n requests as an overloaded proxy would (HTTP
// 503 with no JSON body), then answers like the wrapped node.
type flakyNode struct {
	fails atomic.Int32
	next  http.Handler
}

func (f *flakyNode) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.fails.Add(-1) >= 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	f.next.ServeHTTP(w, r)
}

func TestWaitNetwork(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	log := &recordHandler{}

	// Unreachable at first: warns, retries, then matches.
	flaky := &flakyNode{next: &fakeCore{t: t, results: map[string]any{"getblockchaininfo": map[string]any{"chain": "regtest"}}}}
	flaky.fails.Store(2)
	srv := httptest.NewServer(flaky)
	defer srv.Close()
	c, _ := New(srv.URL, "alice", "secret")
	if err := c.WaitNetwork(ctx, &chaincfg.RegressionNetParams, slog.New(log), 10*time.Millisecond); err != nil {
		t.Fatalf("WaitNetwork: %v", err)
	}
	if n := len(log.messages()); n != 2 || !log.has("cannot check the node's network") {
		t.Fatalf("want 2 warnings while the node was away, got %q", log.messages())
	}

	// A mismatch is returned at once, not retried.
	c2, _ := New(srv.URL, "alice", "secret")
	var mm *NetworkMismatchError
	if err := c2.WaitNetwork(ctx, &chaincfg.SimNetParams, nil, time.Millisecond); !errors.As(err, &mm) {
		t.Fatalf("regtest node, simnet pool: %v", err)
	}

	// A node that never comes: WaitNetwork ends with its context.
	down := httptest.NewServer(http.NotFoundHandler())
	url := down.URL
	down.Close()
	c3, _ := New(url, "", "")
	short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancelShort()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := c3.WaitNetwork(short, &chaincfg.MainNetParams, quiet, 20*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("node down: %v, want the context's error", err)
	}
}
