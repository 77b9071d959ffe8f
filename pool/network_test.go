package pool

import (
	"strings"
	"testing"

	"github.com/btcsuite/btcd/chaincfg/v2"
)

// A simnet base58 address that begins like a bech32 one ("Sb1…", about one
// in a hundred) authorizes like any other: btcd's decoder alone refuses it,
// and the dev stack's miners and wallet hand such addresses out.
func TestParseUsernameSimnetSb1(t *testing.T) {
	const addr = "Sb1C4q46bEmShZ8qna7MuCq8rQD6dxaXTd"
	u, err := ParseUsername(addr+".rig", &chaincfg.SimNetParams)
	if err != nil || u.Address != addr || u.Worker != "rig" {
		t.Fatalf("ParseUsername: %+v, %v", u, err)
	}
	if _, err := ParseUsername(addr+".rig", &chaincfg.RegressionNetParams); err == nil {
		t.Fatal("a simnet address authorized on regtest")
	}
}

// One address, one account: an upper-case bech32 username is stored in
// lower case (the worker name as sent), mixed case is refused, base58 is
// kept as it is; the operator's addresses go through the same rule.
func TestParseUsernameCanonicalAddress(t *testing.T) {
	net := &chaincfg.RegressionNetParams
	const lower = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"
	u, err := ParseUsername(strings.ToUpper(lower)+".Rig.A", net)
	if err != nil || u.Address != lower || u.Worker != "Rig.A" {
		t.Fatalf("ParseUsername(upper case) = %+v, %v; want %s / Rig.A", u, err, lower)
	}
	if u, err := ParseUsername("BCRT1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080.x", net); err == nil {
		t.Fatalf("mixed case accepted as %+v", u)
	}
	const b58 = "mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn"
	if u, err := ParseUsername(b58+".x", net); err != nil || u.Address != b58 {
		t.Fatalf("ParseUsername(base58) = %+v, %v", u, err)
	}
	if a, err := ParseAddress(" "+strings.ToUpper(lower), net); err != nil || a != lower {
		t.Fatalf("ParseAddress(upper case) = %q, %v", a, err)
	}
	if a, err := ParseAddress(lower+".x", net); err == nil {
		t.Fatalf("ParseAddress(with a worker name) = %q", a)
	}
}
