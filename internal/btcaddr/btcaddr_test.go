package btcaddr

import (
	"crypto/sha256"
	"encoding/binary"
	"testing"

	"github.com/btcsuite/btcd/address/v2"
	"github.com/btcsuite/btcd/chaincfg/v2"
)

// A simnet P2PKH address that btcd's own decoder refuses (it begins "Sb1"
// and has no later '1') is found among the first few thousand hashes, and
// Decode reads it as what it is; every other address decodes as btcd
// decodes it.
func TestDecodeSimnetBase58StartingLikeBech32(t *testing.T) {
	params := &chaincfg.SimNetParams
	var found int
	for i := uint32(0); i < 20000 && found < 3; i++ {
		h := sha256.Sum256(binary.BigEndian.AppendUint32(nil, i))
		a, err := address.NewAddressPubKeyHash(h[:20], params)
		if err != nil {
			t.Fatal(err)
		}
		s := a.EncodeAddress()
		got, err := Decode(s, params)
		if err != nil {
			t.Fatalf("Decode(%s): %v", s, err)
		}
		if got.EncodeAddress() != s || !got.IsForNet(params) {
			t.Fatalf("Decode(%s) = %s", s, got.EncodeAddress())
		}
		if _, err := address.DecodeAddress(s, params); err != nil {
			found++
			t.Logf("btcd refuses %s (%v); Decode reads it", s, err)
		}
	}
	if found == 0 {
		t.Fatal("no address btcd refuses among 20000: the case this package mends is not exercised")
	}
	for _, bad := range []string{"Sb1notanaddress", "sb1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq", ""} {
		if _, err := Decode(bad, params); err == nil {
			t.Errorf("Decode(%q) accepted garbage", bad)
		}
	}
	// A mainnet base58 address is not read as simnet's.
	main, _ := address.NewAddressPubKeyHash(make([]byte, 20), &chaincfg.MainNetParams)
	if a, err := Decode(main.EncodeAddress(), params); err == nil && a.IsForNet(params) {
		t.Errorf("mainnet address %s decoded as simnet", main.EncodeAddress())
	}
}
