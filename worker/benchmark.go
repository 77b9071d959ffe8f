package worker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/hashforge/hashforge/internal/backoff"
	"github.com/hashforge/hashforge/stratum"
)

// benchmark mines a synthetic job: a random previous hash and a minimal
// coinbase, a moderate share target, a fresh job every minute so the
// extranonce2 and header paths are exercised the same way as with a pool.
// Shares are verified with the reference hash and counted as accepted.
func (m *Miner) benchmark(ctx context.Context) error {
	target, err := DifficultyTarget(m.cfg.BenchmarkDiff)
	if err != nil {
		return err
	}
	m.setDifficulty(m.cfg.BenchmarkDiff)
	m.log.Info("benchmark: mining a synthetic job without a pool", "diff", m.cfg.BenchmarkDiff)
	owner := &struct{}{}
	for n := 0; ; n++ {
		job, err := syntheticJob(fmt.Sprintf("bench-%d", n))
		if err != nil {
			return err
		}
		rec := &jobRecord{job: job, target: target, diff: m.cfg.BenchmarkDiff}
		m.sched.set(&template{job: job, en1: []byte{0, 0, 0, 1}, en2Size: 4, owner: owner, rec: rec}, target)
		if !backoff.Sleep(ctx, time.Minute) {
			return nil
		}
	}
}

func syntheticJob(id string) (*Job, error) {
	var prev [32]byte
	if _, err := rand.Read(prev[:]); err != nil {
		return nil, err
	}
	// A version-1 transaction with one coinbase input (height push and the
	// extranonce slot in its scriptSig) and one empty output.
	coinb1 := "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff0c03a08601"
	coinb2 := "ffffffff0100f2052a010000000000000000"
	return ParseJob(&stratum.NotifyParams{
		JobID:     id,
		PrevHash:  hex.EncodeToString(prev[:]),
		Coinb1:    coinb1,
		Coinb2:    coinb2,
		Version:   "20000000",
		NBits:     "1d00ffff",
		NTime:     fmt.Sprintf("%08x", uint32(time.Now().Unix())),
		CleanJobs: true,
	})
}
