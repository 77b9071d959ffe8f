package web

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/btcsuite/btcd/chaincfg/v2"
)

// FuzzParseAddress: the address in /api/v1/miners/{address} and the live
// feed's ?address= come from anyone. Parsing never panics, and what it
// accepts is an address of the pool's network, returned as given.
func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{"", "bcrt1qlhn9mv5538g0d2wkt96wrzsrm3n562reay35n7", "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
		"mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn", "x.y", "bcrt1q\x00", "%00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := parseAddress(raw, &chaincfg.RegressionNetParams)
		if err != nil {
			return
		}
		if got != raw || len(raw) > maxAddressLen {
			t.Fatalf("parseAddress(%q) = %q", raw, got)
		}
	})
}

// FuzzPageParams: ?limit= and ?offset= either come back within bounds or
// are refused with 400, never passed on out of range.
func FuzzPageParams(f *testing.F) {
	for _, q := range []string{"", "limit=5&offset=10", "limit=0", "limit=-1", "limit=99999999999999999999", "offset=1e3", "limit=%zz", "limit=200&limit=1"} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, query string) {
		r := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/api/v1/blocks", RawQuery: query}}
		w := httptest.NewRecorder()
		limit, offset, ok := pageParams(w, r)
		if !ok {
			if w.Code != http.StatusBadRequest {
				t.Fatalf("%q refused with %d", query, w.Code)
			}
			return
		}
		if limit < 1 || limit > maxPage || offset < 0 || offset > maxOffset {
			t.Fatalf("%q gave limit %d offset %d", query, limit, offset)
		}
	})
}
