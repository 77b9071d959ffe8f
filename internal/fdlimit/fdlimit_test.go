//go:build unix

package fdlimit

import (
	"syscall"
	"testing"
)

func TestShareKeepsTheReserve(t *testing.T) {
	for _, c := range []struct{ limit, s, h int }{
		{1024, 0, 0}, {20000, 0, 0}, {20000, 100000, 100000}, {1 << 20, 0, 0}, {200, 0, 0}, {0, 0, 0}, {20000, 500, 100},
	} {
		b := Share(c.limit, c.s, c.h)
		if b.Reserve < MinReserve || b.Stratum < 0 || b.HTTP < 0 {
			t.Errorf("Share(%v) = %+v", c, b)
		}
		if c.limit >= MinReserve && b.Reserve+b.Stratum+b.HTTP > c.limit {
			t.Errorf("Share(%v) = %+v hands out more than the limit", c, b)
		}
		if c.s > 0 && c.s <= c.limit-b.Reserve-b.HTTP && b.Stratum != c.s {
			t.Errorf("Share(%v) = %+v: explicit Stratum cap not kept", c, b)
		}
	}
}

func TestRaise(t *testing.T) {
	var before syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &before); err != nil {
		t.Fatal(err)
	}
	n, err := Raise()
	if err != nil {
		t.Fatal(err)
	}
	var after syscall.Rlimit
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &after)
	if uint64(n) != after.Cur || after.Cur != after.Max {
		t.Fatalf("Raise = %d; rlimit before %+v after %+v: soft not at hard", n, before, after)
	}
}
