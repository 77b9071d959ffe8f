package stratum2

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

// testKey derives a fixed secret from a label so tests are reproducible.
func testKey(label string) *btcec.PrivateKey {
	sum := sha256.Sum256([]byte(label))
	k, _ := btcec.PrivKeyFromBytes(sum[:])
	return k
}

// testServer returns an authority and a server static key signed by it,
// valid for an hour around now.
func testServer(t testing.TB) (*btcec.PrivateKey, *StaticKey) {
	t.Helper()
	auth := testKey("authority")
	now := time.Now()
	cert, err := NewCertificate(auth, testKey("static").PubKey(), now.Add(-time.Hour), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	sk, err := NewStaticKey(testKey("static"), cert)
	if err != nil {
		t.Fatal(err)
	}
	return auth, sk
}

func testKeyCast(k interface{}) *btcec.PrivateKey { return k.(*btcec.PrivateKey) }
