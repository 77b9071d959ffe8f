package pool

import (
	"github.com/hashforge/hashforge/stratum"
)

// Conn is what the pool needs of a miner's connection: *stratum.Session
// implements it, and so does a Stratum V2 channel (pool/sv2), which
// translates the Stratum V1 lines the pool sends it.
type Conn = conn

// Channel is a session the pool serves through something other than a
// stratum.Session: the owner feeds it requests in Stratum V1 form and
// closes it when its miner leaves. Every share goes through the same
// checks, vardiff, bans, ledger and block submission as a V1 session's.
type Channel struct {
	s  *Server
	ss *session
}

// OpenChannel starts a session on c.
func (s *Server) OpenChannel(c Conn) *Channel {
	return &Channel{s: s, ss: s.connect(c)}
}

// Handle serves one request, as a V1 session's reader would: replies go
// to the Conn (a share's, once it is kept, possibly from another
// goroutine).
func (ch *Channel) Handle(req *stratum.Request) { ch.s.handle(ch.ss, req) }

// Close ends the session (exactly once).
func (ch *Channel) Close() { ch.s.disconnect(ch.ss) }
