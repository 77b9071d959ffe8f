package stratum2

import (
	"bytes"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcec/v2/ellswift"
)

func readCSV(t *testing.T, name string) [][]string {
	t.Helper()
	data, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(data), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	recs, err := csv.NewReader(strings.NewReader(strings.Join(lines, "\n"))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) == 0 {
		t.Fatalf("%s: no vectors", name)
	}
	return recs
}

// BIP324's ElligatorSwift decoding vectors, through the decoder the client
// uses on the server's static key.
func TestBIP324EllswiftDecode(t *testing.T) {
	for _, r := range readCSV(t, "bip324_ellswift_decode.csv") {
		var e [64]byte
		copy(e[:], unhex(t, r[0]))
		x, err := ellswiftDecodeX(e)
		if err != nil {
			t.Fatalf("%s: %v", r[0], err)
		}
		if got := hex.EncodeToString(x[:]); got != r[1] {
			t.Errorf("decode %s = %s, want %s", r[0], got, r[1])
		}
	}
}

// BIP324's key-agreement vectors through ecdh, the function the handshake
// calls: the x-only shared point and the tagged-hash secret for both roles.
func TestBIP324V2ECDH(t *testing.T) {
	for _, r := range readCSV(t, "bip324_v2_ecdh.csv") {
		priv, _ := btcec.PrivKeyFromBytes(unhex(t, r[1]))
		var ours, theirs [64]byte
		copy(ours[:], unhex(t, r[2]))
		copy(theirs[:], unhex(t, r[3]))
		initiating := r[4] == "1"

		xo, err := ellswiftDecodeX(ours)
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(xo[:]); got != r[5] {
			t.Errorf("vector %s: x(ours) = %s, want %s", r[0], got, r[5])
		}
		if want := xOnly(priv.PubKey()); !bytes.Equal(xo[:], want[:]) {
			t.Errorf("vector %s: ellswift_ours does not encode the private key's x", r[0])
		}
		xs, err := ellswift.EllswiftECDHXOnly(theirs, priv)
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(xs[:]); got != r[6] {
			t.Errorf("vector %s: x shared = %s, want %s", r[0], got, r[6])
		}
		ss, err := ecdh(priv, ours, theirs, initiating)
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(ss); got != r[7] {
			t.Errorf("vector %s: shared secret = %s, want %s", r[0], got, r[7])
		}
	}
}

// Our encoder must produce encodings the BIP324 decoder maps back to the key.
func TestEllswiftEncodeRoundTrip(t *testing.T) {
	for _, label := range []string{"a", "b", "c", "static"} {
		k := testKey(label)
		e, err := ellswiftEncode(k)
		if err != nil {
			t.Fatal(err)
		}
		x, err := ellswiftDecodeX(e)
		if err != nil {
			t.Fatal(err)
		}
		if want := xOnly(k.PubKey()); x != want {
			t.Errorf("%s: decode(encode(P)) = %x, want %x", label, x, want)
		}
	}
}

type rfcVectors struct {
	AEAD struct{ Key, Nonce, AAD, Plaintext, Ciphertext, Tag string }
	HMAC []struct{ Key, Data, MAC string }
	HKDF struct{ IKM, PRK, OKM string }
}

func loadRFC(t *testing.T) rfcVectors {
	data, err := os.ReadFile("testdata/rfc_vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v rfcVectors
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// RFC 8439's AEAD vector through the cipher a CipherState holds, then the
// Noise nonce layout: 4 zero bytes and n little-endian.
func TestChaChaPolyRFC8439(t *testing.T) {
	v := loadRFC(t).AEAD
	var cs cipherState
	cs.initializeKey(unhex(t, v.Key))
	got := cs.aead.Seal(nil, unhex(t, v.Nonce), unhex(t, v.Plaintext), unhex(t, v.AAD))
	want := v.Ciphertext + v.Tag
	if hex.EncodeToString(got) != want {
		t.Fatalf("seal = %x\nwant %s", got, want)
	}

	cs.n = 0x0102030405060708
	ct, err := cs.encryptWithAd(nil, []byte("ad"), []byte("pt"))
	if err != nil {
		t.Fatal(err)
	}
	nonce := unhex(t, "000000000807060504030201")
	if want := cs.aead.Seal(nil, nonce, []byte("pt"), []byte("ad")); !bytes.Equal(ct, want) {
		t.Fatalf("nonce layout: got %x want %x", ct, want)
	}
	if cs.n != 0x0102030405060709 {
		t.Fatalf("n = %x after encrypt, want incremented", cs.n)
	}
}

func TestHMACRFC4231(t *testing.T) {
	for _, v := range loadRFC(t).HMAC {
		got := hmacHash(unhex(t, v.Key), unhex(t, v.Data))
		if hex.EncodeToString(got[:]) != v.MAC {
			t.Errorf("HMAC(%s) = %x, want %s", v.Key, got, v.MAC)
		}
	}
}

// RFC 5869 test case 3 has an empty salt (HashLen zeros) and empty info,
// which is exactly the spec's HKDF with ck = 32 zero bytes.
func TestHKDFRFC5869(t *testing.T) {
	v := loadRFC(t).HKDF
	zero := make([]byte, 32)
	prk := hmacHash(zero, unhex(t, v.IKM))
	if hex.EncodeToString(prk[:]) != v.PRK {
		t.Fatalf("PRK = %x, want %s", prk, v.PRK)
	}
	o1, o2 := hkdf2(zero, unhex(t, v.IKM))
	okm := unhex(t, v.OKM)
	if !bytes.Equal(o1[:], okm[:32]) || !bytes.Equal(o2[:10], okm[32:42]) {
		t.Fatalf("HKDF = %x %x, want %s", o1, o2, v.OKM)
	}
}

// The spec's authority key test vector (section 4.7.1).
func TestAuthorityKeySpecVector(t *testing.T) {
	raw := []byte{118, 99, 112, 0, 151, 156, 28, 17, 175, 12, 48, 11, 205, 140, 127, 228, 134, 16, 252, 233, 185, 193, 30, 61, 174, 227, 90, 224, 176, 138, 116, 85}
	const want = "9bXiEd8boQVhq7WddEcERUL5tyyJVFYdU8th3HfbNXK3Yw6GRXh"
	var k AuthorityPubKey
	copy(k[:], raw)
	if got := k.String(); got != want {
		t.Fatalf("String() = %s, want %s", got, want)
	}
	back, err := ParseAuthorityPubKey(want)
	if err != nil {
		t.Fatal(err)
	}
	if back != k {
		t.Fatalf("parse = %x, want %x", back, k)
	}
}
