package worker

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"

	"github.com/hashforge/hashforge/internal/tlsreload"
	"github.com/hashforge/hashforge/stratum"
)

// dialPool connects to a pool and runs the Stratum client on it. A line
// that is not a Stratum message is logged and skipped: a miner keeps mining
// through the odd garbage line instead of dropping its session (as cgminer
// and cpuminer do). A stratum+ssl URL is dialled with TLS, trusting what
// tlsBase trusts (nil: the system roots).
func dialPool(ctx context.Context, addr string, tlsBase *tls.Config, log *slog.Logger) (*stratum.Client, error) {
	u, err := parseStratumURL(addr)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", u.Host, err)
	}
	if isTLSScheme(u.Scheme) {
		if conn, err = clientTLS(ctx, conn, u.Hostname(), tlsBase); err != nil {
			return nil, err
		}
	}
	return newPoolClient(conn, log), nil
}

// clientTLS runs the TLS handshake on conn before any Stratum line, so an
// untrusted pool is refused before it hears our worker name.
func clientTLS(ctx context.Context, conn net.Conn, host string, base *tls.Config) (net.Conn, error) {
	var cfg *tls.Config
	if base != nil {
		cfg = base.Clone()
	} else {
		cfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		if tlsreload.IsUntrusted(err) {
			return nil, fmt.Errorf("pool certificate not trusted: %w (trust it with --tls-ca FILE or --tls-fingerprint SHA256, or skip the check with --tls-skip-verify)", err)
		}
		return nil, fmt.Errorf("tls handshake: %w", err)
	}
	return tc, nil
}

func newPoolClient(conn net.Conn, log *slog.Logger) *stratum.Client {
	return stratum.NewClientOptions(conn, stratum.ClientOptions{OnProtocolError: func(line []byte, err error) {
		log.Warn("ignoring malformed line from pool", "why", err.Error(), "bytes", len(line))
	}})
}
