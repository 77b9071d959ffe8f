package worker

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"github.com/hashforge/hashforge/stratum"
)

// dialPool connects to a pool and runs the Stratum client on it. A line
// that is not a Stratum message is logged and skipped: a miner keeps mining
// through the odd garbage line instead of dropping its session (as cgminer
// and cpuminer do).
func dialPool(ctx context.Context, addr string, log *slog.Logger) (*stratum.Client, error) {
	u, err := parseStratumURL(addr)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", u.Host, err)
	}
	return newPoolClient(conn, log), nil
}

func newPoolClient(conn net.Conn, log *slog.Logger) *stratum.Client {
	return stratum.NewClientOptions(conn, stratum.ClientOptions{OnProtocolError: func(line []byte, err error) {
		log.Warn("ignoring malformed line from pool", "why", err.Error(), "bytes", len(line))
	}})
}
