package pool

import (
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
