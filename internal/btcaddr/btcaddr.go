// Package btcaddr decodes Bitcoin addresses for a network: btcd's decoder,
// mended where it misreads a base58 address as bech32.
package btcaddr

import (
	"fmt"
	"strings"

	"github.com/btcsuite/btcd/address/v2"
	"github.com/btcsuite/btcd/address/v2/base58"
	"github.com/btcsuite/btcd/chaincfg/v2"
)

// Decode is address.DecodeAddress with one fault of it mended: btcd
// reads any address whose last '1' follows a registered bech32 prefix as
// bech32, so a base58 simnet address that starts "Sb1" (about one in a
// hundred: simnet's P2PKH version byte gives a leading 'S', its bech32 HRP
// is "sb") is refused as a bad bech32 string. When btcd refuses an address
// that is valid base58check with the network's P2PKH or P2SH version, that
// is what it is.
func Decode(addr string, params *chaincfg.Params) (address.Address, error) {
	a, err := address.DecodeAddress(addr, params)
	if err == nil {
		return a, nil
	}
	payload, version, b58err := base58.CheckDecode(addr)
	if b58err != nil || len(payload) != 20 {
		return nil, err
	}
	switch version {
	case params.PubKeyHashAddrID:
		return address.NewAddressPubKeyHash(payload, params)
	case params.ScriptHashAddrID:
		return address.NewAddressScriptHashFromHash(payload, params)
	}
	return nil, err
}

// Normalize returns the one spelling of addr that the pool stores, shows
// and pays: what the decoded address encodes back to. Bech32 and bech32m
// are case-insensitive (BIP 173: all upper or all lower case; mixed case
// is invalid and refused), so "BCRT1Q…" and "bcrt1q…" are one address and
// one account; the canonical spelling is lower case. Base58 is
// case-sensitive and comes back as it is. A hex public key (P2PK) comes
// back as lower-case hex. An address of another network is refused.
//
// Without this, a miner could hold two accounts for one address, and a
// payment batch naming both spellings is one Bitcoin Core's sendmany
// refuses ("duplicated address").
func Normalize(addr string, params *chaincfg.Params) (string, error) {
	a, err := Decode(addr, params)
	if err != nil {
		return "", err
	}
	if !a.IsForNet(params) {
		return "", fmt.Errorf("address %q is not a %s address", addr, params.Name)
	}
	canon := a.EncodeAddress()
	if pk, ok := a.(*address.AddressPubKey); ok {
		// EncodeAddress gives the key's P2PKH address, another script.
		canon = pk.String()
	}
	// Anything beyond case would mean the decoder read the string as
	// some other address than it spells: refuse rather than store a
	// different one.
	if !strings.EqualFold(canon, addr) {
		return "", fmt.Errorf("address %q decodes to %q, not a respelling of it", addr, canon)
	}
	return canon, nil
}
