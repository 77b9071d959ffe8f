package backoff

import (
	"context"
	"slices"
	"testing"
	"time"
)

func TestNextDoublesUpToMax(t *testing.T) {
	b := Backoff{Min: 5 * time.Millisecond, Max: time.Second}
	var got []time.Duration
	for range 10 {
		got = append(got, b.Next()/time.Millisecond)
	}
	if want := []time.Duration{5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000}; !slices.Equal(got, want) {
		t.Fatalf("delays %v ms, want %v", got, want)
	}
	b.Reset()
	if d := b.Next(); d != 5*time.Millisecond {
		t.Fatalf("after Reset: %v", d)
	}
	// Min above Max: Max wins from the start.
	c := Backoff{Min: time.Second, Max: 10 * time.Millisecond}
	if d := c.Next(); d != 10*time.Millisecond {
		t.Fatalf("min above max: %v", d)
	}
}

func TestJitterBounds(t *testing.T) {
	for _, d := range []time.Duration{0, 1, 2, 7, time.Second, 30 * time.Second} {
		for range 100 {
			if s := Spread(d); d > 1 && (s < d/2 || s >= d) || d <= 1 && s != d {
				t.Fatalf("Spread(%v) = %v", d, s)
			}
			if a := Around(d); a < d-d/8 || a > d-d/8+d/4 {
				t.Fatalf("Around(%v) = %v", d, a)
			}
		}
	}
}

func TestSleep(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	if !Sleep(ctx, time.Millisecond) || !Sleep(ctx, 0) {
		t.Fatal("live context: Sleep reported it ended")
	}
	cancel()
	if Sleep(ctx, time.Hour) || Sleep(ctx, 0) {
		t.Fatal("ended context: Sleep reported it live")
	}
}
