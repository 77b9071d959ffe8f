package loadtest

import (
	"math/bits"
	"time"
)

// histogram is a log-linear latency histogram in the manner of HDR
// histograms: values below 256 ns are exact; above, each power of two is
// split into 128 buckets, so a bucket's midpoint is within 1/256 (0.4 %) of
// any value in it. It is fixed-size (about 30 KB), so a long run at a high
// share rate costs no more memory than a short one, and merging miners'
// histograms is adding arrays.
type histogram struct {
	counts [histBuckets]uint32
	n      uint64
	max    int64
}

const (
	histSubBits = 7
	histSub     = 1 << histSubBits // buckets per power of two
	histExact   = 2 * histSub      // values below this are their own bucket
	histBuckets = histExact + (64-histSubBits-1)*histSub
)

func histIndex(v int64) int {
	if v < histExact {
		return int(max(v, 0))
	}
	shift := bits.Len64(uint64(v)) - histSubBits - 1 // top = v>>shift in [histSub, 2·histSub)
	top := uint64(v) >> shift
	return histExact + (shift-1)*histSub + int(top-histSub)
}

// histValue is the midpoint of bucket i.
func histValue(i int) int64 {
	if i < histExact {
		return int64(i)
	}
	shift := (i-histExact)/histSub + 1
	top := int64((i-histExact)%histSub + histSub)
	return top<<shift + (int64(1)<<shift)/2
}

func (h *histogram) add(d time.Duration) {
	v := int64(d)
	h.counts[histIndex(v)]++
	h.n++
	h.max = max(h.max, v)
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// quantile is the nearest-rank q-quantile (the smallest value at or above
// which a fraction q of the samples lie), as a bucket midpoint; 0 for no
// samples. The top quantile is the exact maximum.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q * float64(h.n))
	if float64(rank) < q*float64(h.n) {
		rank++
	}
	rank = max(rank, 1)
	if rank >= h.n {
		return time.Duration(h.max)
	}
	var seen uint64
	for i, c := range h.counts {
		seen += uint64(c)
		if seen >= rank {
			return time.Duration(min(histValue(i), h.max))
		}
	}
	return time.Duration(h.max)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
