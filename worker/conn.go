package worker

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"

	"github.com/hashforge/hashforge/stratum"
)

// maxPoolLine bounds one line from a pool. Pools that pay many outputs in
// the coinbase send long coinb2 strings; a megabyte covers any real one.
const maxPoolLine = 1 << 20

// dialPool connects to a pool and runs the Stratum client over a filter
// that drops lines that are not Stratum messages. stratum.Client treats such
// a line as a fatal protocol error; a miner keeps mining through the odd
// garbage line instead of dropping its session (as cgminer and cpuminer do).
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
	return stratum.NewClient(&filterConn{Conn: conn, r: bufio.NewReaderSize(conn, 64<<10), log: log}), nil
}

// filterConn passes only well-formed Stratum lines to the reader above it.
type filterConn struct {
	net.Conn
	r       *bufio.Reader
	log     *slog.Logger
	pending []byte // the rest of a line already accepted
}

var errLineTooLong = errors.New("pool sent a line over 1 MiB")

func (c *filterConn) Read(p []byte) (int, error) {
	for len(c.pending) == 0 {
		line, err := c.readLine()
		if err != nil {
			return 0, err
		}
		if ok, why := stratumLine(line); !ok {
			c.log.Warn("ignoring malformed line from pool", "why", why, "bytes", len(line))
			continue
		}
		c.pending = line
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

func (c *filterConn) readLine() ([]byte, error) {
	var line []byte
	for {
		frag, err := c.r.ReadSlice('\n')
		line = append(line, frag...)
		if len(line) > maxPoolLine {
			return nil, errLineTooLong
		}
		if err == nil {
			return line, nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			if len(line) > 0 {
				// Deliver a final unterminated line; the error comes next.
				return append(line, '\n'), nil
			}
			return nil, err
		}
	}
}

// stratumLine reports whether line is something stratum.Client can
// dispatch (see stratum.CheckServerLine), and why not.
func stratumLine(line []byte) (bool, string) {
	if err := stratum.CheckServerLine(line); err != nil {
		return false, err.Error()
	}
	return true, ""
}
