package fdlimit

import "testing"

// FuzzShare: the limit comes from getrlimit, the wants from configuration.
// For any of them the reserve is kept first (at least MinReserve and a tenth),
// the caps are never negative and never hand out more than the limit
// leaves after the reserve, HTTP gets at most a quarter of that, and an
// explicit cap that fits is kept as asked.
func FuzzShare(f *testing.F) {
	for _, c := range []struct{ limit, s, h int }{
		{1024, 0, 0}, {20000, 0, 0}, {20000, 100000, 100000}, {1 << 20, 0, 0}, {200, 0, 0}, {0, 0, 0}, {-1 << 62, 0, 0}, {-(int(^uint(0) >> 1)) - 1, 5, 5},
		{20000, 500, 100}, {0, -1, -1}, {int(^uint(0) >> 1), 0, 0}, {MinReserve, 1, 1}, {MinReserve + 3, 0, 5},
	} {
		f.Add(c.limit, c.s, c.h)
	}
	f.Fuzz(func(t *testing.T, limit, stratumWant, httpWant int) {
		b := Share(limit, stratumWant, httpWant)
		// A negative limit (Raise never returns one) is no limit at all:
		// nothing to hand out.
		if limit < 0 {
			if b.Limit != 0 || b.Stratum != 0 || b.HTTP != 0 {
				t.Fatalf("Share(%d, …) = %+v", limit, b)
			}
			return
		}
		if b.Limit != limit || b.Reserve != max(MinReserve, limit/10) {
			t.Fatalf("Share(%d, %d, %d) = %+v: reserve", limit, stratumWant, httpWant, b)
		}
		left := max(0, limit-b.Reserve)
		if b.Stratum < 0 || b.HTTP < 0 || b.Stratum > left-b.HTTP || b.HTTP > left/4 {
			t.Fatalf("Share(%d, %d, %d) = %+v hands out more than the %d left after the reserve", limit, stratumWant, httpWant, b, left)
		}
		if httpWant > 0 && httpWant <= left/4 && b.HTTP != httpWant {
			t.Fatalf("Share(%d, %d, %d) = %+v: explicit HTTP cap not kept", limit, stratumWant, httpWant, b)
		}
		if httpWant <= 0 && b.HTTP != min(1024, left/8) {
			t.Fatalf("Share(%d, %d, %d) = %+v: default HTTP share", limit, stratumWant, httpWant, b)
		}
		if stratumWant > 0 && stratumWant <= left-b.HTTP && b.Stratum != stratumWant {
			t.Fatalf("Share(%d, %d, %d) = %+v: explicit Stratum cap not kept", limit, stratumWant, httpWant, b)
		}
		if (stratumWant <= 0 || stratumWant > left-b.HTTP) && b.Stratum != left-b.HTTP {
			t.Fatalf("Share(%d, %d, %d) = %+v: Stratum does not get the rest", limit, stratumWant, httpWant, b)
		}
	})
}
