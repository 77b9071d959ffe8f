package ban

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)

func mustKey(t *testing.T, s string) netip.Prefix {
	t.Helper()
	k, ok := Key(s)
	if !ok {
		t.Fatalf("Key(%q) refused", s)
	}
	return k
}

func TestKey(t *testing.T) {
	for in, want := range map[string]string{
		"1.2.3.4:3333":                 "1.2.3.4/32",
		"1.2.3.4":                      "1.2.3.4/32",
		"[::ffff:1.2.3.4]:80":          "1.2.3.4/32",
		"[2001:db8:1:2:3:4:5:6]:3333":  "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1":         "2001:db8:1:2::/64",
		"[fe80::1%eth0]:1":             "fe80::/64",
		"[2001:db8:1:2:3:4:5:6]":       "2001:db8:1:2::/64",
		"[::1]:9":                      "::/64",
		"127.0.0.1:0":                  "127.0.0.1/32",
		"[2001:db8:1:2:aaaa::]:65535":  "2001:db8:1:2::/64",
		"[2001:db8:1:3:aaaa::]:65535":  "2001:db8:1:3::/64",
		"[::ffff:10.0.0.1]":            "10.0.0.1/32",
		"[2001:db8::1%25zone]:1":       "2001:db8::/64",
		"192.168.0.255:65535":          "192.168.0.255/32",
		"[2001:db8:ffff:ffff::1]:3333": "2001:db8:ffff:ffff::/64",
	} {
		if got := mustKey(t, in).String(); got != want {
			t.Errorf("Key(%q) = %s, want %s", in, got, want)
		}
	}
	for _, bad := range []string{"", "host:3333", "1.2.3:4", "[1.2.3.4]:x", "::1:", "1.2.3.4:99999"} {
		if k, ok := Key(bad); ok {
			t.Errorf("Key(%q) = %v, want refused", bad, k)
		}
	}
}

func TestInvalidSharesBanAfterMinimumSample(t *testing.T) {
	tb := New(Config{MinShares: 50, MaxInvalidRatio: 0.5, Duration: time.Minute})
	var banned []Ban
	tb.OnBan = func(b Ban) { banned = append(banned, b) }
	k := mustKey(t, "10.0.0.1:1")
	now := t0
	// 49 invalid shares: below the sample, never judged.
	for range 49 {
		if _, ok := tb.Share(k, true, now); ok {
			t.Fatal("banned before the minimum sample")
		}
		now = now.Add(10 * time.Millisecond)
	}
	b, ok := tb.Share(k, true, now)
	if !ok || len(banned) != 1 || banned[0] != b {
		t.Fatalf("50th invalid share: ban %v %v, OnBan %v", b, ok, banned)
	}
	if !strings.Contains(b.Reason, "50 of 50 shares invalid") {
		t.Errorf("reason %q", b.Reason)
	}
	if got, ok := tb.Banned(k, now.Add(59*time.Second)); !ok || got != b {
		t.Errorf("Banned within the ban = %v %v", got, ok)
	}
	if _, ok := tb.Banned(k, b.Until); ok {
		t.Error("ban outlived its Until")
	}
	if l := tb.List(b.Until); len(l) != 0 {
		t.Errorf("List after expiry = %v", l)
	}
}

func TestHonestFarmIsNeverBanned(t *testing.T) {
	tb := New(Config{MinShares: 50, MaxInvalidRatio: 0.5})
	k := mustKey(t, "10.0.0.2:1")
	now := t0
	// A farm: 100,000 shares over ten windows, 40 % refused in a burst
	// (a new block), otherwise a few percent.
	for i := range 100000 {
		invalid := i%25 == 0 || (i > 50000 && i < 50400 && i%5 < 2)
		if b, ok := tb.Share(k, invalid, now); ok {
			t.Fatalf("share %d banned an honest farm: %v", i, b)
		}
		now = now.Add(6 * time.Millisecond)
	}
}

func TestWindowForgets(t *testing.T) {
	tb := New(Config{Window: time.Minute, MinShares: 10, MaxInvalidRatio: 0.5})
	k := mustKey(t, "10.0.0.3:1")
	// 9 invalid, then two windows of silence: the next 9 start over.
	for i := range 9 {
		tb.Share(k, true, t0.Add(time.Duration(i)*time.Second))
	}
	later := t0.Add(3 * time.Minute)
	for i := range 9 {
		if _, ok := tb.Share(k, true, later.Add(time.Duration(i)*time.Second)); ok {
			t.Fatal("old tallies counted after two windows")
		}
	}
	// Half a window after a full bucket, half of it still counts.
	tb2 := New(Config{Window: time.Minute, MinShares: 10, MaxInvalidRatio: 0.5})
	for i := range 8 {
		tb2.Share(k, true, t0.Add(time.Duration(i)*time.Second))
	}
	mid := t0.Add(90 * time.Second) // previous bucket weighted 0.5: 4 events
	for i := range 5 {
		if _, ok := tb2.Share(k, true, mid); ok {
			t.Fatalf("banned at %d+4 events", i+1)
		}
	}
	if _, ok := tb2.Share(k, true, mid); !ok {
		t.Fatal("6 + 0.5*8 = 10 invalid events did not ban")
	}
}

func TestMalformedLinesAndAuthFailures(t *testing.T) {
	tb := New(Config{MinLines: 20, MaxMalformedRatio: 0.5, MaxAuthFailures: 5})
	a, b := mustKey(t, "10.0.0.4:1"), mustKey(t, "10.0.0.5:1")
	for i := range 19 {
		if _, ok := tb.Line(a, true, t0); ok {
			t.Fatalf("line %d banned below the sample", i)
		}
	}
	if _, ok := tb.Line(a, true, t0); !ok {
		t.Fatal("20 malformed of 20 did not ban")
	}
	for i := range 4 {
		if _, ok := tb.AuthFailure(b, t0); ok {
			t.Fatalf("auth failure %d banned", i)
		}
	}
	bn, ok := tb.AuthFailure(b, t0)
	if !ok || !strings.Contains(bn.Reason, "failed authorizations") {
		t.Fatalf("5th auth failure: %v %v", bn, ok)
	}
	if l := tb.List(t0); len(l) != 2 {
		t.Fatalf("List = %v", l)
	}
	if !tb.Lift(a) || tb.Lift(a) {
		t.Error("Lift did not report the one ban")
	}
	if _, ok := tb.Banned(a, t0); ok {
		t.Error("lifted ban still in force")
	}
}

func TestIPv6BannedByPrefix(t *testing.T) {
	tb := New(Config{MaxAuthFailures: 3})
	for i := range 3 {
		tb.AuthFailure(mustKey(t, "[2001:db8:7:7::"+string(rune('1'+i))+"]:1"), t0)
	}
	if _, ok := tb.Banned(mustKey(t, "[2001:db8:7:7:ffff::9]:5"), t0); !ok {
		t.Error("another address in the same /64 is not banned")
	}
	if _, ok := tb.Banned(mustKey(t, "[2001:db8:7:8::1]:5"), t0); ok {
		t.Error("the next /64 is banned")
	}
}

func TestNegativeDurationOnlyCounts(t *testing.T) {
	tb := New(Config{MaxAuthFailures: 1, Duration: -1})
	if _, ok := tb.AuthFailure(mustKey(t, "10.0.0.9:1"), t0); ok {
		t.Error("banned with banning disabled")
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []Config{{MaxInvalidRatio: 2}, {MaxMalformedRatio: -0.1}, {Window: -time.Second}, {MinShares: -1}} {
		if c.Validate() == nil {
			t.Errorf("%+v validated", c)
		}
	}
	if err := Defaults.Validate(); err != nil {
		t.Error(err)
	}
}

func TestTalliesStayBounded(t *testing.T) {
	tb := New(Config{})
	for i := range 300000 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		tb.Share(netip.PrefixFrom(a, 32), false, t0)
	}
	n := 0
	for i := range tb.shards {
		n += len(tb.shards[i].peers)
	}
	if n > shards*maxPeers {
		t.Fatalf("%d tallies kept, bound %d", n, shards*maxPeers)
	}
}

func FuzzKey(f *testing.F) {
	for _, s := range []string{"1.2.3.4:1", "[::1]:2", "[fe80::1%eth0]:3", "::ffff:1.2.3.4", "", "[", "]:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, ok := Key(s)
		if !ok {
			return
		}
		if !k.IsValid() || k.Addr().Zone() != "" || (k.Addr().Is4() && k.Bits() != 32) || (k.Addr().Is6() && k.Bits() != 64) {
			t.Fatalf("Key(%q) = %v", s, k)
		}
		if k.Masked() != k {
			t.Fatalf("Key(%q) = %v is not masked", s, k)
		}
		// A key is its own key.
		if k2, ok := Key(k.Addr().String()); !ok || k2 != k {
			t.Fatalf("Key(Key(%q)) = %v, want %v", s, k2, k)
		}
	})
}

func FuzzParseKey(f *testing.F) {
	for _, s := range []string{"127.0.0.2", "2001:db8::/64", "2001:db8::1", "::ffff:1.2.3.4", "::ffff:1.2.3.4/128", "10.0.0.0/8",
		"", "[::1]", "1.2.3.4/32", "fe80::1%eth0", "1.2.3.4:80", "[2001:db8::1]:80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, ok := ParseKey(s)
		if !ok {
			return
		}
		// What the admin API prints reads back as the same key.
		if back, ok := ParseKey(FormatKey(k)); !ok || back != k {
			t.Fatalf("%q: key %v prints as %q, reads back as %v %v", s, k, FormatKey(k), back, ok)
		}
		if bits := k.Bits(); (k.Addr().Is4() && bits != 32) || (k.Addr().Is6() && bits != 64) {
			t.Fatalf("%q: key %v", s, k)
		}
	})
}

func TestParseKey(t *testing.T) {
	for s, want := range map[string]string{"127.0.0.2": "127.0.0.2/32", "2001:db8::/64": "2001:db8::/64",
		"2001:db8::5": "2001:db8::/64", "1.2.3.4:80": "1.2.3.4/32", "::ffff:1.2.3.4": "1.2.3.4/32", "10.0.0.0/8": "", "x": ""} {
		k, ok := ParseKey(s)
		if got := ""; ok {
			got = k.String()
			if got != want {
				t.Errorf("ParseKey(%q) = %s, want %s", s, got, want)
			}
		} else if want != "" {
			t.Errorf("ParseKey(%q) refused, want %s", s, want)
		}
	}
}
