package ledger

import (
	"context"
	"sync"
	"testing"
	"time"
)

// BenchmarkBatcher measures shares per second end to end: AddShare from
// several producers, through the queue, batched and written with COPY,
// until Run has committed the last one.
func BenchmarkBatcher(b *testing.B) {
	l, _ := newTestLedger(b)
	shares := makeShares(b.N, 1000, "bench")
	bt := NewBatcher(l, BatcherOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)

	b.ResetTimer()
	start := time.Now()
	go func() { done <- bt.Run(ctx) }()
	const producers = 8
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			for i := p; i < len(shares); i += producers {
				bt.AddShare(shares[i], nil)
			}
		})
	}
	wg.Wait()
	cancel() // Run drains and commits everything before returning
	if err := <-done; err != nil {
		b.Fatalf("Run: %v", err)
	}
	elapsed := time.Since(start)
	b.StopTimer()

	if st := bt.Stats(); st.SharesWritten != uint64(b.N) {
		b.Fatalf("wrote %d shares, want %d", st.SharesWritten, b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "shares/s")
}

// BenchmarkShareInsertRowByRow is the baseline BenchmarkBatcher is judged
// against: one autocommitted INSERT per share, worker ids already known.
func BenchmarkShareInsertRowByRow(b *testing.B) {
	l, _ := newTestLedger(b)
	ctx := testCtx(b)
	shares := makeShares(b.N, 1000, "bench")
	var workerID int64
	if err := l.Pool().QueryRow(ctx,
		"INSERT INTO workers (address, name) VALUES ('bench', 'rig') RETURNING id").Scan(&workerID); err != nil {
		b.Fatal(err)
	}

	b.ResetTimer()
	start := time.Now()
	for _, s := range shares {
		_, err := l.Pool().Exec(ctx, `
			INSERT INTO shares (time, worker_id, job_id, difficulty, actual_difficulty, height, is_block, block_hash, remote_addr, extranonce1)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			s.Time, workerID, s.JobID, s.Difficulty, s.ActualDiff, s.Height, s.IsBlock,
			nullIfEmpty(s.BlockHash), nullIfEmpty(s.RemoteAddr), nullIfEmpty(s.ExtraNonce1))
		if err != nil {
			b.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "shares/s")
}
