package loadtest

import (
	"context"
	"crypto/tls"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashforge/hashforge/internal/tlsreload"
	"github.com/hashforge/hashforge/stratum"
)

// TestRunOverTLS: the generator's sessions speak stratum+ssl, and the
// counts still match what the pool saw; an untrusted pool is a connect
// error that says why.
func TestRunOverTLS(t *testing.T) {
	dir := t.TempDir()
	cf, kf := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	if err := tlsreload.WriteSelfSigned(cf, kf, []string{"127.0.0.1"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	certs, err := tlsreload.Load(cf, kf, nil)
	if err != nil {
		t.Fatal(err)
	}
	n, err := stratum.ParseNotify(realShare(t).Notify)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := startCheckingPoolOn(t, tls.NewListener(ln, certs.Config()), n, 1e-7, false)
	url := "stratum+ssl://" + ln.Addr().String()
	trust, err := tlsreload.ClientOptions{CAFile: cf}.Config()
	if err != nil {
		t.Fatal(err)
	}

	rep, err := Run(context.Background(), Config{URL: url, TLS: trust, Miners: 3, Duration: 300 * time.Millisecond, User: "addr", Mode: ModeAccept})
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	if rep.Sessions != 3 || p.sessions != 3 || rep.Accepted == 0 || rep.Accepted != int64(p.accepted) || p.low != 0 || rep.Rejected != 0 {
		t.Errorf("over TLS: %d sessions, %d accepted, %d rejected; pool: %d sessions, %d accepted, %d low",
			rep.Sessions, rep.Accepted, rep.Rejected, p.sessions, p.accepted, p.low)
	}
	p.mu.Unlock()

	// A long Duration: the run ends when both connects have failed, and
	// a slow handshake (under -race) must not end first.
	rep, err = Run(context.Background(), Config{URL: url, Miners: 2, Duration: time.Minute, Mode: ModeIdle})
	if err == nil || rep.ConnectErrors != 2 || rep.Sessions != 0 || !strings.Contains(rep.FirstError, "--tls-ca") {
		t.Errorf("untrusted pool: err %v, %d connect errors, %d sessions, first error %q", err, rep.ConnectErrors, rep.Sessions, rep.FirstError)
	}
}

func TestStripSchemeTLS(t *testing.T) {
	for url, want := range map[string]bool{"stratum+ssl://h:1": true, "ssl://h:1": true, "stratum+tcp://h:1": false, "h:1": false} {
		hp, useTLS, err := stripScheme(url)
		if err != nil || hp != "h:1" || useTLS != want {
			t.Errorf("%s: %q %v %v", url, hp, useTLS, err)
		}
	}
}
