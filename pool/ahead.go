package pool

import (
	"github.com/btcsuite/btcd/chainhash/v2"

	"github.com/hashforge/hashforge/pool/node"
)

// AnnouncedBlock is a block another pool node found and its node
// accepted (ledger.BlockNotice, as serve hands it over).
type AnnouncedBlock struct {
	Height   int64
	Hash     string // display-order hex
	PrevHash string // display-order hex
	Time     int64  // header timestamp, unix seconds
	Ours     bool   // found by this pool node's miners
}

// ExternalBlock takes a block another pool node announced, or one of this
// node's that its node accepted (Ours; submitBlock hands it in). When it builds
// on this node's current tip, the miners get an empty job on top of it at
// once, before this node's own node has the block and a template on it:
// their work on the old tip is worth nothing from this moment. The node's
// template replaces the empty job as soon as it comes. It never blocks.
func (s *Server) ExternalBlock(b AnnouncedBlock) {
	select {
	case s.external <- b:
	default: // a burst of announcements: the newest ones matter, and come again
	}
}

// aheadTemplate is an empty template on top of b, from the current one
// (last), or nil when one cannot be made safely: b does not build on the
// current job's tip, or the next block's bits cannot be known without the
// node (a retarget, a network with minimum-difficulty blocks, a signet).
func (s *Server) aheadTemplate(b AnnouncedBlock, cur *Job, last *node.Template) *node.Template {
	if cur == nil || last == nil || b.Height != cur.Height || b.PrevHash != cur.prevDisplay || b.Hash == cur.prevDisplay ||
		last.PreviousBlockHash.String() != cur.prevDisplay {
		return nil
	}
	t := s.emptyTemplate(last, b.Height+1)
	if t == nil {
		return nil
	}
	hash, err := chainhash.NewHashFromStr(b.Hash)
	if err != nil {
		return nil
	}
	t.PreviousBlockHash = *hash
	// Past the announced block's time, so past the median of the last
	// eleven.
	t.MinTime = b.Time + 1
	t.CurTime = max(s.now().Unix(), b.Time+1, last.CurTime)
	return t
}

// subsidy is the block subsidy at height: 50 BTC halved every interval.
func subsidy(height int64, interval int32) int64 {
	if interval <= 0 {
		return 50_0000_0000
	}
	halvings := height / int64(interval)
	if halvings >= 64 {
		return 0
	}
	return 50_0000_0000 >> halvings
}

// workAhead publishes the empty job for an announced block, if one can be
// made. Called from Run.
func (s *Server) workAhead(b AnnouncedBlock, last *node.Template) bool {
	t := s.aheadTemplate(b, s.jobs.Current(), last)
	if t == nil {
		return false
	}
	who := "another pool node found a block"
	if b.Ours {
		who = "block accepted"
	}
	s.log.Info(who+": empty job on it until the node sends a template", "height", b.Height, "hash", b.Hash)
	return s.publishJobOf(t, true, true)
}
