package main

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/hashforge/hashforge/pool"
	"github.com/hashforge/hashforge/stratum"
)

// parseReconnectTo reads --reconnect-to: empty, or HOST:PORT.
func parseReconnectTo(s string) (host string, port int, err error) {
	if s == "" {
		return "", 0, nil
	}
	h, p, err := net.SplitHostPort(s)
	if err == nil {
		port, err = strconv.Atoi(p)
	}
	if err != nil || h == "" || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("--reconnect-to %q: want HOST:PORT", s)
	}
	return h, port, nil
}

// drain is a graceful stop of the Stratum ports: no new connection, every
// miner asked to reconnect (elsewhere with --reconnect-to), then up to
// --shutdown-grace for them to leave and for the shares they sent to be
// answered. Whoever is still connected after that is closed by the
// caller; the ledger is flushed after.
func drain(ports []*stratum.Server, srv *pool.Server, cfg serveConfig, log *slog.Logger) {
	for _, p := range ports {
		p.StopAccepting()
	}
	host, port, _ := parseReconnectTo(cfg.ReconnectTo)
	n := srv.Reconnect(host, port, 0)
	if n == 0 || cfg.ShutdownGrace <= 0 {
		return
	}
	start := time.Now()
	deadline := start.Add(cfg.ShutdownGrace)
	for time.Now().Before(deadline) {
		left := 0
		for _, p := range ports {
			left += p.Sessions()
		}
		if left == 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	left := 0
	for _, p := range ports {
		left += p.Sessions()
	}
	log.Info("stratum ports drained", "asked", n, "still_connected", left, "took", time.Since(start).Round(time.Millisecond))
}
