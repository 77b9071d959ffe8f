// Package btcaddr decodes Bitcoin addresses for a network: btcd's decoder,
// mended where it misreads a base58 address as bech32.
package btcaddr

import (
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
