//go:build !unix

package stratum

import "net"

// rawReader has no raw reads here: readers keep their buffer.
type rawReader struct{ yield bool }

func (*rawReader) ok() bool { return false }

func (*rawReader) takeYield() bool { return false }

func (lr *LineReader) useRaw(net.Conn) {}

func (lr *LineReader) fillRaw() {}
