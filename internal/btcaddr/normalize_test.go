package btcaddr

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/btcsuite/btcd/address/v2"
	"github.com/btcsuite/btcd/chaincfg/v2"
	"github.com/btcsuite/btcd/txscript/v2"
)

// Witness programs of the BIP 173 and BIP 350 test vectors.
var (
	p2wpkhProg = mustHex("751e76e8199196d454941c45d1b3a323f1433bd6")
	p2wshProg  = mustHex("1863143c14c5166804bd19203356da136c985678cd4d27a1b8c6329604903262")
	p2trProg   = mustHex("79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798")
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

var networks = []*chaincfg.Params{&chaincfg.MainNetParams, &chaincfg.TestNet3Params,
	&chaincfg.RegressionNetParams, &chaincfg.SimNetParams}

// witnessAddresses are a P2WPKH, a P2WSH (bech32) and a P2TR (bech32m)
// address of params, built from the BIP vectors' programs.
func witnessAddresses(t *testing.T, params *chaincfg.Params) []string {
	t.Helper()
	wpkh, err := address.NewAddressWitnessPubKeyHash(p2wpkhProg, params)
	if err != nil {
		t.Fatal(err)
	}
	wsh, err := address.NewAddressWitnessScriptHash(p2wshProg, params)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := address.NewAddressTaproot(p2trProg, params)
	if err != nil {
		t.Fatal(err)
	}
	return []string{wpkh.EncodeAddress(), wsh.EncodeAddress(), tr.EncodeAddress()}
}

// The published vectors themselves: upper case is valid and normalises
// to lower case; mixed case is invalid (BIP 173).
func TestNormalizeBIPVectors(t *testing.T) {
	valid := []struct {
		in, want string
		params   *chaincfg.Params
	}{
		{"BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4", "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", &chaincfg.MainNetParams},
		{"bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", &chaincfg.MainNetParams},
		{"tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7", "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7", &chaincfg.TestNet3Params},
		{"TB1QRP33G0Q5C5TXSP9ARYSRX4K6ZDKFS4NCE4XJ0GDCCCEFVPYSXF3Q0SL5K7", "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7", &chaincfg.TestNet3Params},
		{"BC1P0XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQZK5JJ0", "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0", &chaincfg.MainNetParams},
		{"tb1pqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesf3hn0c", "tb1pqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesf3hn0c", &chaincfg.TestNet3Params},
		{"BCRT1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KYGT080", "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080", &chaincfg.RegressionNetParams},
		{"SB1P0XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQJ0G639", "sb1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqj0g639", &chaincfg.SimNetParams},
		// Base58 is case-sensitive: as is.
		{"1MirQ9bwyQcGVJPwKUgapu5ouK2E2Ey4gX", "1MirQ9bwyQcGVJPwKUgapu5ouK2E2Ey4gX", &chaincfg.MainNetParams},
	}
	for _, v := range valid {
		got, err := Normalize(v.in, v.params)
		if err != nil || got != v.want {
			t.Errorf("Normalize(%s, %s) = %q, %v; want %q", v.in, v.params.Name, got, err, v.want)
		}
	}
	invalid := []struct {
		in     string
		params *chaincfg.Params
	}{
		// Mixed case (BIP 173's invalid vector, and one of ours).
		{"tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sL5k7", &chaincfg.TestNet3Params},
		{"Bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", &chaincfg.MainNetParams},
		// bech32m checksum on a v0 program, bech32 on v1 (BIP 350).
		{"bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7v8n0nx0muaewav253zgeav", &chaincfg.MainNetParams},
		{"tb1z0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqglt7rf", &chaincfg.TestNet3Params},
		// Another network's address.
		{"bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", &chaincfg.TestNet3Params},
		// Base58 with its case changed is another (invalid) string.
		{"1MIRQ9BWYQCGVJPWKUGAPU5OUK2E2EY4GX", &chaincfg.MainNetParams},
		{"", &chaincfg.MainNetParams},
	}
	for _, v := range invalid {
		if got, err := Normalize(v.in, v.params); err == nil {
			t.Errorf("Normalize(%s, %s) = %q; want an error", v.in, v.params.Name, got)
		}
	}
}

// On every network the pool runs on: lower, upper and mixed case of
// each witness address kind, base58 P2PKH and P2SH, and a hex key.
func TestNormalizeEveryNetwork(t *testing.T) {
	for _, params := range networks {
		for _, lower := range witnessAddresses(t, params) {
			for _, in := range []string{lower, strings.ToUpper(lower)} {
				if got, err := Normalize(in, params); err != nil || got != lower {
					t.Errorf("%s: Normalize(%s) = %q, %v; want %s", params.Name, in, got, err, lower)
				}
			}
			hrp, data, _ := strings.Cut(lower, "1")
			mixed := strings.ToUpper(hrp) + "1" + data
			if got, err := Normalize(mixed, params); err == nil {
				t.Errorf("%s: Normalize(%s) = %q; mixed case accepted", params.Name, mixed, got)
			}
		}
		pkh, _ := address.NewAddressPubKeyHash(p2wpkhProg, params)
		sh, _ := address.NewAddressScriptHashFromHash(p2wpkhProg, params)
		for _, a := range []string{pkh.EncodeAddress(), sh.EncodeAddress()} {
			if got, err := Normalize(a, params); err != nil || got != a {
				t.Errorf("%s: Normalize(%s) = %q, %v; base58 must come back as it is", params.Name, a, got, err)
			}
		}
		key := "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
		if got, err := Normalize(strings.ToUpper(key), params); err != nil || got != key {
			t.Errorf("%s: Normalize(hex key) = %q, %v; want %s", params.Name, got, err, key)
		}
	}
}

// FuzzNormalize: usernames are network input. What Normalize accepts
// normalises to itself, is the input up to case, pays the same script as
// the input, and, unless it is base58, is accepted as the same address in
// upper and in lower case.
func FuzzNormalize(f *testing.F) {
	f.Add("BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4", uint8(0))
	f.Add("tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sL5k7", uint8(1))
	f.Add("bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080", uint8(2))
	f.Add("SB1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KRXE8SE", uint8(3))
	f.Add("1MirQ9bwyQcGVJPwKUgapu5ouK2E2Ey4gX", uint8(0))
	f.Add("0279BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798", uint8(2))
	f.Fuzz(func(t *testing.T, in string, net uint8) {
		params := networks[int(net)%len(networks)]
		out, err := Normalize(in, params)
		if err != nil {
			return
		}
		if !strings.EqualFold(in, out) {
			t.Fatalf("Normalize(%q) = %q: not a respelling", in, out)
		}
		again, err := Normalize(out, params)
		if err != nil || again != out {
			t.Fatalf("Normalize(Normalize(%q)) = %q, %v; want %q", in, again, err, out)
		}
		a, err := Decode(in, params)
		if err != nil {
			t.Fatalf("Decode(%q): %v after Normalize accepted it", in, err)
		}
		b, err := Decode(out, params)
		if err != nil {
			t.Fatalf("Decode(%q): %v", out, err)
		}
		// Only base58 is case-sensitive: every other accepted form is one
		// address in either case.
		switch a.(type) {
		case *address.AddressPubKeyHash, *address.AddressScriptHash:
		default:
			for _, v := range []string{strings.ToUpper(in), strings.ToLower(in)} {
				if got, err := Normalize(v, params); err != nil || got != out {
					t.Fatalf("Normalize(%q) = %q, %v; %q normalises to %q", v, got, err, in, out)
				}
			}
		}
		sa, erra := txscript.PayToAddrScript(a)
		sb, errb := txscript.PayToAddrScript(b)
		if (erra == nil) != (errb == nil) || !bytes.Equal(sa, sb) {
			t.Fatalf("%q pays %x (%v), its normal form %q pays %x (%v)", in, sa, erra, out, sb, errb)
		}
	})
}
