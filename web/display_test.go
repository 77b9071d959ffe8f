package web

import (
	"regexp"
	"strconv"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestShown(t *testing.T) {
	for in, want := range map[string]string{
		"rig1":                                "rig1",
		"":                                    "",
		"rig\u202Eevil":                       `rig\u202Eevil`,
		"a\u202Ab\u202Bc\u202Cd\u202De\u202E": `a\u202Ab\u202Bc\u202Cd\u202De\u202E`,
		"\u2066\u2067\u2068\u2069":            `\u2066\u2067\u2068\u2069`,
		"\u200E\u200F\u061C":                  `\u200E\u200F\u061C`,
		"zero\u200Bwidth\u200D\uFEFF":         `zero\u200Bwidth\u200D\uFEFF`,
		"tab\tnl\nnul\x00del\x7F\u0085":       `tab\u0009nl\u000Anul\u0000del\u007F\u0085`,
		"line\u2028para\u2029":                `line\u2028para\u2029`,
		"tag\U000E0041":                       `tag\U000E0041`,
		"bad\xff\xfeutf8":                     `bad\xFF\xFEutf8`,
		"日本語 ëé ₿ 🙂 ×–…":                      "日本語 ëé ₿ 🙂 ×–…",
		"\uFFFD is a character":               "\uFFFD is a character",
		`already\u202E`:                       `already\u202E`,
	} {
		if got := Shown(in); got != want {
			t.Errorf("Shown(%q) = %q, want %q", in, got, want)
		}
	}
}

// The character class app.js uses is hidden, exactly: every bidi
// control the display rule is about is in it, and it matches the
// predicate at every range edge.
func TestHiddenClass(t *testing.T) {
	c := hiddenClass()
	for _, r := range []rune{0x202A, 0x202E, 0x2066, 0x2069, 0x200E, 0x200F, 0x061C, 0, 0x1F, 0x7F, 0x9F, 0xD800, 0xDFFF} {
		if !hidden(r) {
			t.Errorf("U+%04X is not hidden", r)
		}
	}
	// Parse the class back and compare it with hidden for every rune.
	in := make(map[rune]bool)
	item := regexp.MustCompile(`\\u\{([0-9A-F]+)\}(?:-\\u\{([0-9A-F]+)\})?`)
	if rest := item.ReplaceAllString(c, ""); rest != "" {
		t.Fatalf("class %s: left over %q", c, rest)
	}
	for _, m := range item.FindAllStringSubmatch(c, -1) {
		lo, _ := strconv.ParseUint(m[1], 16, 32)
		hi := lo
		if m[2] != "" {
			hi, _ = strconv.ParseUint(m[2], 16, 32)
		}
		for r := rune(lo); r <= rune(hi); r++ {
			in[r] = true
		}
	}
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if in[r] != hidden(r) {
			t.Fatalf("U+%04X: in class %v, hidden %v (class %s)", r, in[r], hidden(r), c)
		}
	}
}

// FuzzShown: whatever a miner names a worker, what the page shows is
// valid UTF-8 without a hidden character, and a name with nothing to hide
// is shown as it is.
func FuzzShown(f *testing.F) {
	for _, s := range []string{"rig1", "rig\u202Eevil", "\xff", "\U000E0001", "a\u2028b", `\u202E`, ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		// Shown is a loop over runes: longer names only reach new hit-count
		// buckets of it, each minimized at ~n²/2 execs, which held the
		// worker in the minimizer for most of a run.
		if len(s) > 256 {
			return
		}
		got := Shown(s)
		if !utf8.ValidString(got) {
			t.Fatalf("Shown(%q) = %q: not UTF-8", s, got)
		}
		clean := utf8.ValidString(s)
		for _, r := range got {
			if hidden(r) {
				t.Fatalf("Shown(%q) = %q: has U+%04X", s, got, r)
			}
		}
		for _, r := range s {
			if hidden(r) {
				clean = false
			}
		}
		if clean != (got == s) {
			t.Fatalf("Shown(%q) = %q (clean input: %v)", s, got, clean)
		}
		if Shown(got) != got {
			t.Fatalf("Shown is not idempotent on %q", s)
		}
	})
}
