package main

import (
	"fmt"
	"log/slog"
	"net"
	"os"

	"github.com/hashforge/hashforge/pool"
	"github.com/hashforge/hashforge/pool/sv2"
	"github.com/hashforge/hashforge/stratum2"
)

// v2Port is serve's Stratum V2 port, bound.
type v2Port struct {
	srv *sv2.Server
	ln  net.Listener
	url string // stratum2+tcp://HOST:PORT/AUTHORITY_PUBKEY
}

// listenV2 binds --sv2-addr with the authority key of
// --sv2-authority-key (made on first use); nil when the port is off.
func listenV2(cfg serveConfig, srv *pool.Server, guard *stratumGuard, log *slog.Logger) (*v2Port, error) {
	if cfg.SV2Addr == "" {
		return nil, nil
	}
	auth, err := stratum2.LoadOrGenerateAuthorityKeyFile(cfg.SV2Authority)
	if err != nil {
		return nil, fmt.Errorf("--sv2-authority-key: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.SV2Addr)
	if err != nil {
		return nil, fmt.Errorf("listen stratum v2: %w", err)
	}
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		if h, err := os.Hostname(); err == nil {
			host = h
		}
	}
	url := stratum2.URL{Addr: net.JoinHostPort(host, port), Authority: stratum2.AuthorityPubKeyOf(auth)}.String()
	log.Info("pool listening for stratum v2", "stratum_v2", ln.Addr().String(), "url", url, "authority_key_file", cfg.SV2Authority)
	return &v2Port{ln: ln, url: url, srv: &sv2.Server{
		Pool:      srv,
		Authority: auth,
		Gate:      guard.gate,
		Logger:    log.With("component", "stratum-v2"),
	}}, nil
}
