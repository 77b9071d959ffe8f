package walletrpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashforge/hashforge/payout"
)

func TestFormatParseBTC(t *testing.T) {
	for _, c := range []struct {
		sat int64
		s   string
	}{{0, "0.00000000"}, {1, "0.00000001"}, {123456789, "1.23456789"}, {2_100_000_000_000_000, "21000000.00000000"}, {546, "0.00000546"}} {
		got, err := FormatBTC(c.sat)
		if err != nil || got != c.s {
			t.Errorf("FormatBTC(%d) = %q, %v; want %q", c.sat, got, err, c.s)
		}
		back, err := ParseBTC(got)
		if err != nil || back != c.sat {
			t.Errorf("ParseBTC(%q) = %d, %v", got, back, err)
		}
	}
	for s, want := range map[string]int64{"2.61e-06": 261, "-1.23456789": -123456789, "-2": -200000000, "0.1": 10000000, "1E-8": 1} {
		if got, err := ParseBTC(s); err != nil || got != want {
			t.Errorf("ParseBTC(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, bad := range []string{"0.000000001", "abc", "", "1e30"} {
		if _, err := ParseBTC(bad); err == nil {
			t.Errorf("ParseBTC(%q): no error", bad)
		}
	}
	for _, bad := range []int64{-1, 2_100_000_000_000_001} {
		if _, err := FormatBTC(bad); err == nil {
			t.Errorf("FormatBTC(%d): no error", bad)
		}
	}
}

// TestErrorClasses checks what the client's errors prove: a refused
// connection is unreachable (nothing was sent), a connection lost after
// the request was written is an unknown outcome, a JSON-RPC error is a
// refusal, and gettransaction's -5 is ErrTxNotFound.
func TestErrorClasses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	amounts := map[string]int64{"addr": 100_000}

	// Nothing listens on a port we just closed.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	c, err := New(closed, "u", "p", Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.SendMany(ctx, amounts, "batch")
	if !payout.IsUnreachable(err) || !errors.Is(err, payout.ErrWalletUnreachable) || payout.IsRefusal(err) {
		t.Fatalf("refused connection: %v; want unreachable", err)
	}
	if k := payout.WalletErrorKind(err); k != payout.ErrKindWalletUnreachable {
		t.Fatalf("refused connection: kind %s", k)
	}

	// A wallet that reads the request and hangs up: it may have run.
	var mu sync.Mutex
	reply := func(w http.ResponseWriter, r *http.Request) {
		hj, _ := w.(http.Hijacker)
		conn, _, _ := hj.Hijack()
		conn.Close()
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		mu.Lock()
		f := reply
		mu.Unlock()
		f(w, r)
	}))
	defer srv.Close()
	c, err = New(srv.URL, "u", "p", Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.SendMany(ctx, amounts, "batch")
	if err == nil || payout.IsUnreachable(err) || payout.IsRefusal(err) {
		t.Fatalf("connection lost after the request: %v; want an unknown outcome", err)
	}
	if k := payout.WalletErrorKind(err); k != payout.ErrKindWalletUnknownOutcome {
		t.Fatalf("connection lost after the request: kind %s", k)
	}

	// Refusals.
	setReply := func(code int, msg string) {
		mu.Lock()
		defer mu.Unlock()
		reply = func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"result":null,"error":{"code":%d,"message":%q},"id":1}`, code, msg)
		}
	}
	setReply(-6, "Insufficient funds")
	_, err = c.SendMany(ctx, amounts, "batch")
	if !payout.IsRefusal(err) || payout.WalletErrorKind(err) != payout.ErrKindWalletInsufficient {
		t.Fatalf("insufficient funds: %v (%s)", err, payout.WalletErrorKind(err))
	}
	setReply(-5, "Invalid or non-wallet transaction id")
	_, err = c.Transaction(ctx, strings.Repeat("ab", 32))
	if !errors.Is(err, payout.ErrTxNotFound) {
		t.Fatalf("gettransaction of an unknown txid: %v; want ErrTxNotFound", err)
	}
	setReply(-8, "Invalid parameter")
	if _, err = c.Transaction(ctx, "x"); errors.Is(err, payout.ErrTxNotFound) || !payout.IsRefusal(err) {
		t.Fatalf("gettransaction refused otherwise: %v", err)
	}
}

// FuzzParseBTC: amounts in wallet replies are network input. Parsing never
// panics or runs away; what it accepts is in range and exact, and every
// valid satoshi amount survives FormatBTC → ParseBTC.
func FuzzParseBTC(f *testing.F) {
	for _, s := range []string{"0", "1.5", "-0.00000001", "2.61e-06", "21000000", "1e999999999", "0.000000001", "abc", "1/3", ""} {
		f.Add(s, int64(123456789))
	}
	f.Fuzz(func(t *testing.T, s string, sat int64) {
		if v, err := ParseBTC(s); err == nil && (v > payout.MaxMoney || v < -payout.MaxMoney) {
			t.Fatalf("ParseBTC(%q) = %d, out of range", s, v)
		}
		txt, err := FormatBTC(sat)
		if err != nil {
			if sat >= 0 && sat <= payout.MaxMoney {
				t.Fatalf("FormatBTC(%d): %v", sat, err)
			}
			return
		}
		if back, err := ParseBTC(txt); err != nil || back != sat {
			t.Fatalf("FormatBTC(%d) = %q parses back as %d, %v", sat, txt, back, err)
		}
	})
}
