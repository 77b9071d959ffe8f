package ledger

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

// BenchmarkBatcher measures shares per second end to end: AddShare from
// many producers (as the Stratum sessions are), each share acknowledged
// once durable, until every share is committed in PostgreSQL. "spool" is
// the pool's configuration: group commit to the fsynced write-ahead spool,
// applied in order; "direct" has no spool: each group is a database
// commit. The acknowledgement latency's median and p99 are reported too.
func BenchmarkBatcher(b *testing.B) {
	for _, mode := range []string{"spool", "direct"} {
		b.Run(mode, func(b *testing.B) {
			l, _ := newTestLedger(b)
			// As serve does at start: the shares go to today's
			// partition, not to DEFAULT.
			if _, err := l.MaintainPartitions(testCtx(b), time.Now(), 1); err != nil {
				b.Fatal(err)
			}
			shares := makeShares(b.N, 1000, "bench")
			opts := BatcherOptions{}
			if mode == "spool" {
				opts.SpoolDir = b.TempDir()
			}
			bt := NewBatcher(l, opts)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			lat := make([]time.Duration, b.N)

			b.ResetTimer()
			start := time.Now()
			go func() { done <- bt.Run(ctx) }()
			const producers = 64
			var wg sync.WaitGroup
			for p := range producers {
				wg.Go(func() {
					// A session waits for nothing: it goes on reading
					// while its shares are being kept, up to a window.
					sem := make(chan struct{}, 16)
					for i := p; i < len(shares); i += producers {
						sem <- struct{}{}
						t0 := time.Now()
						bt.AddShare(shares[i], func(err error) {
							if err != nil {
								b.Error(err)
							}
							lat[i] = time.Since(t0)
							<-sem
						})
					}
					for range cap(sem) {
						sem <- struct{}{}
					}
				})
			}
			wg.Wait()
			acked := time.Since(start)
			for bt.Stats().SharesWritten < uint64(b.N) {
				time.Sleep(time.Millisecond)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			cancel()
			if err := <-done; err != nil {
				b.Fatalf("Run: %v", err)
			}
			slices.Sort(lat)
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "shares/s")
			b.ReportMetric(float64(b.N)/acked.Seconds(), "acked/s")
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "ack-p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "ack-p99-ms")
		})
	}
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
