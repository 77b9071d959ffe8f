package pool

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/hashforge/hashforge/internal/backoff"
	"github.com/hashforge/hashforge/record"
)

// submitTimeout bounds submitblock, retries included. It is generous: a
// block is worth waiting for, and a node validating a large block is slow.
const submitTimeout = 2 * time.Minute

// submitBackoff is the wait before each retry of a submitblock that got no
// answer from the node: five tries over about three seconds, all before the
// miner hears back. A node's verdict is final and never retried.
var submitBackoff = []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, 1600 * time.Millisecond}

// submitBlock sends a solved block to the node. It runs on the submitting
// session's goroutine before the miner gets its reply: nothing is more
// urgent. The context is detached from the session so a miner hanging up
// cannot abort the submission. A submitblock that gets no answer is retried
// a few times (submitBackoff); the node's verdict is final. The ledger
// record of the block is made in the background (blockRecorder), so a slow or
// absent database never holds up the miner or loses the block.
func (s *Server) submitBlock(res *ShareResult, en1, en2 []byte, user Username, remote string) {
	j := res.Job
	hash := res.BlockHash()
	blockHex := j.blockHex(&res.Header, en1, en2, res.Coinb2)
	log := s.log.With("height", j.Height, "hash", hash, "job", j.ID, "address", user.Address,
		"worker", user.Worker, "remote", remote)
	// Blocks are routine (thousands on regtest): INFO. WARN and ERROR are
	// for what an operator must look at.
	log.Info("block found: submitting to node")
	b := record.Block{
		Time:     s.now(),
		Height:   j.Height,
		Hash:     hash,
		Reward:   j.coinbaseVal,
		Address:  user.Address,
		Worker:   user.Worker,
		Header:   hex.EncodeToString(res.Header[:]),
		Coinbase: hex.EncodeToString(j.coinbase(en1, en2, res.Coinb2)),
	}
	// Journaled before it goes out: if the process dies before the
	// verdict, the next start knows who found the block (the chain will
	// say whether it counts). Not fsynced, so the block leaves at once.
	s.journalBlock(b, false, log)

	ctx, cancel := context.WithTimeout(context.Background(), submitTimeout)
	defer cancel()
	verdict, err := s.submitWithRetry(ctx, blockHex, log)
	b.Time = s.now()
	switch {
	case err != nil:
		// The node may have taken the block and its answer been lost
		// (Core answers a submitblock it queued behind busy RPC threads
		// long after the client gave up): the chain will tell.
		b.Unknown, b.Verdict = true, "unknown: submitblock got no answer: "+err.Error()
		log.Warn("block submission got no answer from the node; recorded as unknown until the chain shows it",
			"err", err, "block_hex", blockHex)
	case verdict == "":
		b.Accepted, b.Verdict = true, "accepted"
		s.jobs.Solved(j.prevHash)
		log.Info("block accepted by node")
		// Miners move to the next height now, not when the node's next
		// template comes: an empty job on this block (for Stratum V2
		// channels, the future job they hold, activated).
		s.ExternalBlock(AnnouncedBlock{Height: j.Height, Hash: hash, PrevHash: j.prevDisplay,
			Time: int64(binary.LittleEndian.Uint32(res.Header[68:72])), Ours: true})
	case isUncertainVerdict(verdict):
		b.Unknown, b.Verdict = true, verdict
		log.Info("block not rejected but not on the node's active chain (a lost race, or a block the node already has); the chain will tell",
			"verdict", verdict)
	default:
		b.Verdict = verdict
		log.Error("BLOCK REJECTED by node", "verdict", verdict, "block_hex", blockHex)
	}
	// Durable before the miner hears back and before the database is
	// tried: a crash from here on loses nothing.
	s.journalBlock(b, true, log)
	s.stats.block(b)
	s.rec.record(b, log)
}

// journalBlock writes b to the block journal, if there is one. A journal
// that fails is logged loudly; the block still goes to the ledger as
// before (in memory, retried), which is all that can be done.
func (s *Server) journalBlock(b record.Block, decided bool, log *slog.Logger) {
	if s.cfg.BlockJournal == nil {
		return
	}
	if err := s.cfg.BlockJournal.JournalBlock(b, decided); err != nil {
		log.Error("BLOCK JOURNAL WRITE FAILED: the block is kept in memory only until the ledger takes it",
			"decided", decided, "err", err, "header", b.Header, "coinbase", b.Coinbase)
	}
}

// submitWithRetry calls submitblock until the node answers, at most
// 1+len(s.submitBackoff) times. A retry may reach a node that did take an
// earlier attempt whose answer was lost; it then says the block is a
// duplicate, which means accepted.
func (s *Server) submitWithRetry(ctx context.Context, blockHex string, log *slog.Logger) (string, error) {
	for attempt := 0; ; attempt++ {
		verdict, err := s.submit.SubmitBlock(ctx, blockHex)
		if err == nil {
			if attempt > 0 && isDuplicateVerdict(verdict) {
				log.Info("submitblock retry: node already has the block (an earlier attempt reached it)",
					"verdict", verdict, "attempts", attempt+1)
				return "", nil
			}
			if attempt > 0 {
				log.Info("submitblock answered after retries", "attempts", attempt+1)
			}
			return verdict, nil
		}
		if attempt >= len(s.submitBackoff) || ctx.Err() != nil {
			return "", fmt.Errorf("%w (after %d attempts)", err, attempt+1)
		}
		wait := s.submitBackoff[attempt]
		log.Warn("submitblock got no answer from the node, retrying", "attempt", attempt+1, "retry_in", wait, "err", err)
		if !backoff.Sleep(ctx, wait) {
			return "", fmt.Errorf("%w (after %d attempts)", err, attempt+1)
		}
	}
}

// isDuplicateVerdict recognises "I have this block already, and it is
// valid": Bitcoin Core's "duplicate" and btcd's "rejected: already have
// block …". Core's "duplicate-invalid" and "duplicate-inconclusive" are not.
func isDuplicateVerdict(v string) bool {
	return v == "duplicate" || strings.Contains(v, "already have block")
}

// isUncertainVerdict recognises Bitcoin Core's answers that are not a
// rejection (BIP 22 and Core's submitblock): "inconclusive" (valid, but
// not on the active chain, usually a block at a height the node already
// has) and "duplicate-inconclusive", and a "duplicate" (or btcd's
// "already have block") heard on the first attempt, when the pool cannot
// know who submitted it first. Whether such a block counts is for the
// chain to say.
func isUncertainVerdict(v string) bool {
	return v == "inconclusive" || v == "duplicate-inconclusive" || isDuplicateVerdict(v)
}
