//go:build !unix

package stratum

import "net"

// rawWriter has no non-blocking write here: every backlog gets a writer.
type rawWriter struct{}

func (*rawWriter) write(net.Conn, [][]byte) (lines, partial int, ok bool, err error) {
	return 0, 0, false, nil
}
