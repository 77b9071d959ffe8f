package sv2

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashforge/hashforge/stratum"
	"github.com/hashforge/hashforge/stratum2"
)

// TestGateCapsV2Connections: V2 connections count against the V1 ports'
// Gate. At the cap a connection without a channel gives way to a new one;
// when every connection has a channel the new one is refused; a ban
// closes the address's connections and refuses it at accept.
func TestGateCapsV2Connections(t *testing.T) {
	srv, _, stopPool := benchPool(t)
	defer stopPool()
	auth, err := stratum2.LoadOrGenerateAuthorityKeyFile(filepath.Join(t.TempDir(), "authority.key"))
	if err != nil {
		t.Fatal(err)
	}
	gate := stratum.NewGate(stratum.GateLimits{MaxSessions: 2})
	var banned atomic.Bool
	gate.Banned = func(netip.Prefix) bool { return banned.Load() }
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	s := &Server{Pool: srv, Authority: auth, Gate: gate, Logger: slog.New(slog.DiscardHandler)}
	served := make(chan struct{})
	go func() { defer close(served); _ = s.Serve(ctx, ln) }()
	defer func() { cancel(); <-served }()

	dial := func() (*stratum2.Conn, error) {
		nc, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return nil, err
		}
		_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
		c, err := stratum2.Client(nc, stratum2.AuthorityPubKeyOf(auth))
		if err != nil {
			nc.Close()
			return nil, err
		}
		if err := c.WriteMessage(&stratum2.SetupConnection{Protocol: stratum2.ProtocolMining, MinVersion: 2, MaxVersion: 2,
			EndpointHost: "pool", EndpointPort: 1, Vendor: "test"}); err != nil {
			return nil, err
		}
		if m, _, err := c.ReadMessage(); err != nil {
			return nil, err
		} else if _, ok := m.(*stratum2.SetupConnectionSuccess); !ok {
			return nil, errors.New("no SetupConnection.Success")
		}
		return c, nil
	}
	openChannel := func(c *stratum2.Conn) {
		t.Helper()
		if err := c.WriteMessage(&stratum2.OpenExtendedMiningChannel{RequestID: 1, UserIdentity: benchAddr + ".g",
			NominalHashRate: 1e6, MinExtranonceSize: 4}); err != nil {
			t.Fatal(err)
		}
		for {
			m, _, err := c.ReadMessage()
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := m.(*stratum2.OpenExtendedMiningChannelSuccess); ok {
				return
			}
		}
	}
	// closed reads until the connection ends: true when the pool closed
	// it, false when the read deadline passed first.
	closed := func(c *stratum2.Conn) bool {
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				return !errors.Is(err, os.ErrDeadlineExceeded)
			}
		}
	}
	waitOpen := func(want int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); gate.Stats().Open != want; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("gate counts %d connections, want %d", gate.Stats().Open, want)
			}
		}
	}

	miner, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	openChannel(miner)
	idle, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	waitOpen(2)
	if st := gate.Stats(); st.Unauthorized != 1 {
		t.Fatalf("gate %+v; want one connection without a channel", st)
	}
	// At the cap: the connection without a channel gives way.
	newer, err := dial()
	if err != nil {
		t.Fatalf("a new connection at the cap with one without a channel: %v", err)
	}
	if !closed(idle) {
		t.Fatal("the connection without a channel was not closed")
	}
	openChannel(newer)
	waitOpen(2)
	// Every connection has a channel: the next is refused.
	if c, err := dial(); err == nil {
		c.Close()
		t.Fatal("a connection past a cap of connections with channels was taken")
	}
	if st := gate.Stats(); st.Evicted != 1 || st.RefusedTotal != 1 {
		t.Fatalf("gate %+v; want 1 evicted, 1 refused", st)
	}
	// A ban closes both and refuses the address at accept.
	banned.Store(true)
	if n := gate.CloseKey(netip.MustParsePrefix("127.0.0.1/32"), stratum.ErrBanned); n != 2 {
		t.Fatalf("ban closed %d connections, want 2", n)
	}
	if !closed(miner) || !closed(newer) {
		t.Fatal("a banned address's connection stayed open")
	}
	waitOpen(0)
	if c, err := dial(); err == nil {
		c.Close()
		t.Fatal("a banned address was taken")
	}
}
