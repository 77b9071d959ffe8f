package ledger

import (
	"math"
	"testing"
	"time"

	"github.com/hashforge/hashforge/record"
)

func TestHashrateSeries(t *testing.T) {
	l, _ := newTestLedger(t)
	ctx := testCtx(t)
	// A fixed clock in the middle of a minute: buckets are 60 s, aligned
	// to the epoch, so now's bucket is [12:00, 12:01) and the window of 5
	// complete buckets is [11:55, 12:00).
	now := time.Date(2026, 3, 1, 12, 0, 30, 0, time.UTC)
	at := func(d time.Duration) time.Time { return time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).Add(d) }
	shares := []record.Share{
		{Time: at(-5 * time.Minute), Address: "bcrt1qa", Worker: "rig1", Difficulty: 60},              // first bucket, on its lower edge
		{Time: at(-4*time.Minute - time.Second), Address: "bcrt1qa", Worker: "rig1", Difficulty: 6},   // still the first bucket
		{Time: at(-time.Second), Address: "bcrt1qa", Worker: "rig2", Difficulty: 120},                 // last complete bucket
		{Time: at(-5*time.Minute - time.Second), Address: "bcrt1qa", Worker: "rig1", Difficulty: 1e6}, // before the window
		{Time: at(10 * time.Second), Address: "bcrt1qa", Worker: "rig1", Difficulty: 1e6},             // in the partial bucket
		{Time: at(-2 * time.Minute), Address: "bcrt1qb", Worker: "", Difficulty: 30},
		{Time: at(-time.Hour), Address: "bcrt1qa", Worker: "old", Difficulty: 1},
	}
	for i := range shares {
		shares[i].JobID, shares[i].Height = "j", 1
		sanitizeShare(&shares[i])
	}
	b := NewBatcher(l, BatcherOptions{})
	if _, err := b.writeBatch(ctx, batch{ID: newBatchID(now), Shares: shares}); err != nil {
		t.Fatalf("writeBatch: %v", err)
	}
	rate := func(diff float64) float64 { return diff * (1 << 32) / 60 }
	check := func(what string, pts []HashratePoint, want []float64) {
		t.Helper()
		if len(pts) != len(want) {
			t.Fatalf("%s: %d points, want %d", what, len(pts), len(want))
		}
		for i, p := range pts {
			if wantEnd := at(time.Duration(i-4) * time.Minute); !p.End.Equal(wantEnd) {
				t.Errorf("%s[%d] ends %v, want %v", what, i, p.End, wantEnd)
			}
			if math.Abs(p.Hashrate-want[i]) > want[i]*1e-9 || math.IsNaN(p.Hashrate) {
				t.Errorf("%s[%d] = %v H/s, want %v", what, i, p.Hashrate, want[i])
			}
		}
	}

	pts, err := l.poolHashrateSeries(ctx, now, 5*time.Minute, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	check("pool", pts, []float64{rate(66), 0, 0, rate(30), rate(120)})

	ws, err := l.workerHashrateSeries(ctx, now, "bcrt1qa", 5*time.Minute, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 2 || ws[0].Name != "rig1" || ws[1].Name != "rig2" {
		t.Fatalf("worker series %+v: want rig1 and rig2 (old has no share in the window)", ws)
	}
	check("rig1", ws[0].Points, []float64{rate(66), 0, 0, 0, 0})
	check("rig2", ws[1].Points, []float64{0, 0, 0, 0, rate(120)})

	if ws, err := l.workerHashrateSeries(ctx, now, "bcrt1qnobody", 5*time.Minute, time.Minute); err != nil || len(ws) != 0 {
		t.Errorf("unknown address: %+v, %v", ws, err)
	}
	// The exported form runs against the real clock: an empty window is
	// all zeros, never NaN.
	if pts, err := l.PoolHashrateSeries(ctx, time.Hour, 10*time.Minute); err != nil || len(pts) != 6 || pts[5].Hashrate != 0 {
		t.Errorf("PoolHashrateSeries(now) = %+v, %v", pts, err)
	}

	for _, bad := range []struct{ window, bucket time.Duration }{
		{time.Hour, 0}, {time.Hour, 1500 * time.Millisecond}, {time.Minute, time.Hour},
		{90 * time.Second, time.Minute}, {30 * 24 * time.Hour, time.Second},
	} {
		if _, err := l.poolHashrateSeries(ctx, now, bad.window, bad.bucket); err == nil {
			t.Errorf("window %v bucket %v: no error", bad.window, bad.bucket)
		}
	}
}

// The axis of an empty chart is the axis every series of that window has.
func TestSeriesAxis(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 30, 0, time.UTC)
	ends, err := SeriesAxis(now, 5*time.Minute, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	pts := densePoints(now.Unix()/60-5, 5, 60, nil)
	if len(ends) != len(pts) || ends[4] != time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).Unix() {
		t.Fatalf("axis %v", ends)
	}
	for i := range pts {
		if ends[i] != pts[i].End.Unix() {
			t.Fatalf("axis[%d] = %d, series end %d", i, ends[i], pts[i].End.Unix())
		}
	}
	if _, err := SeriesAxis(now, 90*time.Second, time.Minute); err == nil {
		t.Fatal("a window that is not a whole number of buckets was accepted")
	}
}
