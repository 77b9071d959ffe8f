package walletrpc

import "testing"

func TestFormatParseBTC(t *testing.T) {
	for _, c := range []struct {
		sat int64
		s   string
	}{{0, "0.00000000"}, {1, "0.00000001"}, {123456789, "1.23456789"}, {2_100_000_000_000_000, "21000000.00000000"}, {546, "0.00000546"}} {
		got, err := FormatBTC(c.sat)
		if err != nil || got != c.s {
			t.Errorf("FormatBTC(%d) = %q, %v; want %q", c.sat, got, err, c.s)
		}
		back, err := ParseBTC(got)
		if err != nil || back != c.sat {
			t.Errorf("ParseBTC(%q) = %d, %v", got, back, err)
		}
	}
	for s, want := range map[string]int64{"2.61e-06": 261, "-1.23456789": -123456789, "-2": -200000000, "0.1": 10000000, "1E-8": 1} {
		if got, err := ParseBTC(s); err != nil || got != want {
			t.Errorf("ParseBTC(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, bad := range []string{"0.000000001", "abc", "", "1e30"} {
		if _, err := ParseBTC(bad); err == nil {
			t.Errorf("ParseBTC(%q): no error", bad)
		}
	}
	for _, bad := range []int64{-1, 2_100_000_000_000_001} {
		if _, err := FormatBTC(bad); err == nil {
			t.Errorf("FormatBTC(%d): no error", bad)
		}
	}
}
