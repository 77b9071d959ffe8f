package web

import (
	"fmt"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// Text that miners choose (worker names, and whatever else reaches a page
// from outside: block verdicts, payment reasons, an address typed into a
// URL) is shown with its invisible characters escaped: bidi controls
// (U+202A–U+202E, U+2066–U+2069, U+200E/F, U+061C) would let a name
// render as another one, and zero-width and other format or control
// characters would let two different names look the same. Escaping
// (\u202E) rather than removing keeps two such names apart on the page.
//
// The rule is hidden; Shown applies it in Go, and app.js's shown() applies
// the same rule, given as the character class hiddenClass in the pages'
// data-hidden attribute, to everything it displays from the API and the
// live feed. The API and the feed carry names as they are: they are data,
// and a script matching worker names needs the real ones.

// hidden is whether r must not reach a page as itself: control (Cc),
// format (Cf, which holds every bidi control and the zero-width
// characters), line and paragraph separators, and surrogates (never valid
// alone).
func hidden(r rune) bool {
	return unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp, unicode.Cs)
}

// Shown is s as a page may display it: every hidden character as a
// visible escape (\u202E, \U000E0001), every byte that is not UTF-8 as
// \xFF; the rest as it is.
func Shown(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || hidden(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02X`, s[i])
		case hidden(r):
			b.WriteString(escapeRune(r))
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

func escapeRune(r rune) string {
	if r <= 0xFFFF {
		return fmt.Sprintf(`\u%04X`, r)
	}
	return fmt.Sprintf(`\U%08X`, r)
}

// hiddenClass is the set of hidden runes as the inside of a JavaScript
// regexp character class with the u flag (\u{0}-\u{1F}\u{7F}-…), built
// from hidden itself so the page cannot disagree with Shown.
var hiddenClass = sync.OnceValue(func() string {
	var b strings.Builder
	for lo := rune(0); lo <= unicode.MaxRune; lo++ {
		if !hidden(lo) {
			continue
		}
		hi := lo
		for hi+1 <= unicode.MaxRune && hidden(hi+1) {
			hi++
		}
		fmt.Fprintf(&b, `\u{%X}`, lo)
		if hi > lo {
			fmt.Fprintf(&b, `-\u{%X}`, hi)
		}
		lo = hi
	}
	return b.String()
})
