package pool

import (
	"net/netip"
	"time"

	"github.com/hashforge/hashforge/internal/ban"
	"github.com/hashforge/hashforge/stratum"
)

// banKey is what bans count a connection under: the stratum session's
// own key (the one its Gate counts), else its remote address's.
func banKey(c conn) netip.Prefix {
	if kc, ok := c.(interface{ Key() netip.Prefix }); ok {
		return kc.Key()
	}
	k, _ := ban.Key(c.RemoteAddr())
	return k
}

// invalidForBans says whether a refused share counts against its sender's
// address. Stale and unknown jobs (a new block, a pool restart) and
// duplicates (a miner resending after a difficulty change) come from
// honest miners in bursts; the rest do not.
func invalidForBans(re *RejectError) bool {
	switch re {
	case ErrStaleJob, ErrJobNotFound, ErrDuplicate:
		return false
	}
	return true
}

func (s *Server) tallyShare(ss *session, invalid bool, now time.Time) {
	if s.cfg.Bans != nil && ss.key.IsValid() {
		s.cfg.Bans.Share(ss.key, invalid, now)
	}
}

func (s *Server) tallyAuthFailure(ss *session) {
	if s.cfg.Bans != nil && ss.key.IsValid() {
		s.cfg.Bans.AuthFailure(ss.key, s.now())
	}
}

// ObserveLine implements stratum.LineObserver: the malformed-line ratio
// of each address, for bans.
func (s *Server) ObserveLine(st *stratum.Session, malformed bool) {
	if s.cfg.Bans != nil {
		if k := st.Key(); k.IsValid() {
			s.cfg.Bans.Line(k, malformed, s.now())
		}
	}
}
