package worker

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashforge/hashforge/internal/tlsreload"
	"github.com/hashforge/hashforge/stratum2"
)

// tlsPair writes a self-signed pair for 127.0.0.1 and returns its files
// and the SHA-256 fingerprint.
func tlsPair(t *testing.T) (certFile, keyFile, fp string) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "pool.crt"), filepath.Join(dir, "pool.key")
	if err := tlsreload.WriteSelfSigned(certFile, keyFile, []string{"127.0.0.1"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	fp, err := tlsreload.Fingerprint(certFile)
	if err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, fp
}

// startTLSPool is the scripted pool behind a real TLS listener.
func startTLSPool(t *testing.T, addr string, certFile, keyFile string) *testPool {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	certs, err := tlsreload.Load(certFile, keyFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return startPoolOn(t, tls.NewListener(ln, certs.Config()), "stratum+ssl://", 0x1fffe000)
}

func clientConfig(t *testing.T, o tlsreload.ClientOptions) *tls.Config {
	t.Helper()
	c, err := o.Config()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestTLSPoolSharesVerified(t *testing.T) {
	cf, kf, _ := tlsPair(t)
	p := startTLSPool(t, "", cf, kf)
	m, stop := testMinerCfg(t, Config{URLs: []string{p.addr}, TLS: clientConfig(t, tlsreload.ClientOptions{CAFile: cf})})
	p.waitFor("10 valid shares over TLS", func() bool { return p.validShares(nil) >= 10 })
	stop()
	p.assertNoInvalid()
	if st := m.Stats(); st.Accepted < 10 || st.Rejected != 0 || st.Pool != p.addr {
		t.Errorf("stats %+v", st)
	}
}

// TestTLSTrust: which certificates the dial accepts, and what an
// untrusted one says.
func TestTLSTrust(t *testing.T) {
	cf, kf, fp := tlsPair(t)
	p := startTLSPool(t, "", cf, kf)
	otherCert, _, otherFP := tlsPair(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	for _, tc := range []struct {
		name    string
		opts    *tlsreload.ClientOptions // nil: system roots
		wantErr string
	}{
		{"system roots", nil, "--tls-ca"},
		{"ca", &tlsreload.ClientOptions{CAFile: cf}, ""},
		{"another ca", &tlsreload.ClientOptions{CAFile: otherCert}, "--tls-ca"},
		{"pin", &tlsreload.ClientOptions{Fingerprint: fp}, ""},
		{"pin with colons, upper case", &tlsreload.ClientOptions{Fingerprint: colons(strings.ToUpper(fp))}, ""},
		{"pin and ca", &tlsreload.ClientOptions{Fingerprint: fp, CAFile: cf}, ""},
		{"pin and wrong ca", &tlsreload.ClientOptions{Fingerprint: fp, CAFile: otherCert}, "--tls-ca"},
		{"wrong pin", &tlsreload.ClientOptions{Fingerprint: otherFP}, "--tls-fingerprint"},
		{"skip verify", &tlsreload.ClientOptions{SkipVerify: true}, ""},
	} {
		var cfg *tls.Config
		if tc.opts != nil {
			cfg = clientConfig(t, *tc.opts)
		}
		c, err := dialPool(ctx, p.addr, cfg, log)
		if tc.wantErr == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
				continue
			}
			if _, err := c.Call(ctx, "mining.subscribe", []any{"tls-test"}); err != nil {
				t.Errorf("%s: subscribe over TLS: %v", tc.name, err)
			}
			c.Close()
			continue
		}
		if err == nil {
			c.Close()
			t.Errorf("%s: dial succeeded, want a refusal", tc.name)
			continue
		}
		// The error names the flag that fixes it (the session's error
		// adds the pool's URL).
		t.Logf("%s: %v", tc.name, err)
		if msg := err.Error(); !strings.Contains(msg, "certificate") || !strings.Contains(msg, tc.wantErr) {
			t.Errorf("%s: error %q does not name the certificate and %s", tc.name, msg, tc.wantErr)
		}
	}
	// A plain-TCP miner on the TLS port is not a Stratum session.
	plain := "stratum+tcp://" + strings.TrimPrefix(p.addr, "stratum+ssl://")
	if c, err := dialPool(ctx, plain, nil, log); err == nil {
		ctx2, cancel2 := context.WithTimeout(ctx, 5*time.Second)
		if _, err := c.Call(ctx2, "mining.subscribe", nil); err == nil {
			t.Error("plain Stratum answered on the TLS port")
		}
		cancel2()
		c.Close()
	}
}

func colons(hexFP string) string {
	var b strings.Builder
	for i := 0; i < len(hexFP); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(hexFP[i : i+2])
	}
	return b.String()
}

// TestFailoverMixesTCPAndTLS: a stratum+ssl primary that is down, a
// stratum+tcp backup, then the primary back: the miner returns to it
// (the probe dials TLS too).
func TestFailoverMixesTCPAndTLS(t *testing.T) {
	cf, kf, _ := tlsPair(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	primaryAddr := ln.Addr().String()
	ln.Close()
	backup := startPool(t, "", 0x1fffe000)
	_, stop := testMinerCfg(t, Config{URLs: []string{"stratum+ssl://" + primaryAddr, backup.addr},
		ProbeInterval: 100 * time.Millisecond, TLS: clientConfig(t, tlsreload.ClientOptions{CAFile: cf})})
	defer stop()
	backup.waitFor("shares on the plain backup", func() bool { return backup.validShares(nil) >= 3 })
	primary := startTLSPool(t, primaryAddr, cf, kf)
	primary.waitFor("shares on the TLS primary", func() bool { return primary.validShares(nil) >= 3 })
	backup.waitFor("the backup session to end", func() bool { return len(backup.sessions) == 0 })
	stop()
	backup.assertNoInvalid()
	primary.assertNoInvalid()
}

func TestParseStratumURLSchemes(t *testing.T) {
	for raw, tlsWant := range map[string]bool{
		"stratum+tcp://h:1": false, "tcp://h:1": false, "stratum://h:1": false, "h:1": false,
		"stratum+ssl://h:1": true, "stratum+tls://h:1": true, "ssl://h:1": true, "tls://h:1": true,
	} {
		u, err := parseStratumURL(raw)
		if err != nil || isTLSScheme(u.Scheme) != tlsWant {
			t.Errorf("%s: %v, tls %v, want %v", raw, err, err == nil && isTLSScheme(u.Scheme), tlsWant)
		}
	}
	for _, bad := range []string{"https://h:1", "stratum+ssl://h", "stratum+ssl://:1", "stratum+udp://h:1"} {
		if _, err := parseStratumURL(bad); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

func FuzzParseStratumURL(f *testing.F) {
	for _, s := range []string{"stratum+tcp://pool.example:3333", "stratum+ssl://[::1]:3334", "h:1", "ssl://u:p@h:1/x?y#z", "stratum+ssl://h",
		"stratum2+tcp://pool.example:34254/9bXiEd8boQVhq7WddEcERUL5tyyJVFYdU8th3HfbNXK3Yw6GRXh",
		"stratum2+tcp://[::1]:34254/9bXiEd8boQVhq7WddEcERUL5tyyJVFYdU8th3HfbNXK3Yw6GRXh/",
		"stratum2+tcp://pool.example:34254/", "stratum2+tcp://pool.example/9bXiEd8boQVhq7WddEcERUL5tyyJVFYdU8th3HfbNXK3Yw6GRXh"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := parseStratumURL(raw)
		if err != nil {
			return
		}
		// What it accepts, the dial can use: a host, a port and a
		// scheme the dial knows.
		if u.Hostname() == "" || u.Port() == "" {
			t.Fatalf("%q accepted without host:port", raw)
		}
		switch u.Scheme {
		case "stratum+tcp", "stratum", "tcp", "stratum+ssl", "stratum+tls", "ssl", "tls":
		case stratum2.URLScheme:
			// A V2 URL is dialled with its authority key: it must parse
			// as one, key included.
			if !isV2URL(raw) {
				t.Fatalf("%q accepted as V2 but not dialled as V2", raw)
			}
			if _, err := stratum2.ParseURL(raw); err != nil {
				t.Fatalf("%q accepted without a usable authority key: %v", raw, err)
			}
		default:
			t.Fatalf("%q accepted with scheme %q", raw, u.Scheme)
		}
	})
}
