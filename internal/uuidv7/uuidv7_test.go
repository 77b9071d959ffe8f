package uuidv7

import (
	"testing"
	"time"
)

func TestNewStringParse(t *testing.T) {
	id := New(time.UnixMilli(0x0123456789ab))
	s := id.String()
	if len(s) != 36 || s[:13] != "01234567-89ab" || s[14] != '7' || !(s[19] >= '8' && s[19] <= 'b') {
		t.Fatalf("%s: not a UUIDv7 with that timestamp", s)
	}
	if back, err := Parse(s); err != nil || back != id {
		t.Fatalf("Parse(%s) = %v, %v", s, back, err)
	}
	if New(time.UnixMilli(2)).String() <= New(time.UnixMilli(1)).String() {
		t.Error("later ids must sort after earlier ones")
	}
	for _, bad := range []string{"", "0123456789ab", "01234567-89ab-7cde-8f01-23456789abcg", "0123456789ab-7cde-8f01-23456789abcdef"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}
