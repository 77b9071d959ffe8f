package stratum2

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestAuthorityKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "authority.key")
	k, err := GenerateAuthorityKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	if _, err := GenerateAuthorityKeyFile(path); !errors.Is(err, os.ErrExist) {
		t.Errorf("second generate: %v, want ErrExist (never overwrite a key)", err)
	}
	back, err := LoadAuthorityKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !back.Key.Equals(&k.Key) {
		t.Fatal("loaded key differs from generated")
	}
	again, err := LoadOrGenerateAuthorityKeyFile(path)
	if err != nil || !again.Key.Equals(&k.Key) {
		t.Fatalf("LoadOrGenerate on an existing file: %v", err)
	}

	// A key signs certificates its public key verifies.
	now := time.Now()
	cert, err := NewCertificate(k, testKey("s").PubKey(), now, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := cert.Verify(AuthorityPubKeyOf(back), xOnly(testKey("s").PubKey()), now); err != nil {
		t.Fatal(err)
	}

	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadAuthorityKeyFile(path); err == nil || !strings.Contains(err.Error(), "readable by others") {
		t.Errorf("world-readable key: %v", err)
	}

	for name, content := range map[string]string{
		"short": "abcd\n",
		"zero":  strings.Repeat("0", 64),
		"order": "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141", // n: not a valid secret
		"text":  "not hex at all",
	} {
		p := filepath.Join(t.TempDir(), name)
		os.WriteFile(p, []byte(content), 0o600)
		if _, err := LoadAuthorityKeyFile(p); err == nil {
			t.Errorf("%s key file accepted", name)
		}
	}

	fresh := filepath.Join(t.TempDir(), "new.key")
	if _, err := LoadOrGenerateAuthorityKeyFile(fresh); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Fatalf("LoadOrGenerate did not create the file: %v", err)
	}
}

func TestParseURL(t *testing.T) {
	const key = "9bXiEd8boQVhq7WddEcERUL5tyyJVFYdU8th3HfbNXK3Yw6GRXh"
	u, err := ParseURL("stratum2+tcp://thepool.com:34254/" + key)
	if err != nil {
		t.Fatal(err)
	}
	if u.Addr != "thepool.com:34254" || u.Authority.String() != key {
		t.Fatalf("parsed %+v", u)
	}
	if u.String() != "stratum2+tcp://thepool.com:34254/"+key {
		t.Errorf("String() = %s", u)
	}
	v6, err := ParseURL("stratum2+tcp://[::1]:3336/" + key + "/")
	if err != nil || v6.Addr != "[::1]:3336" {
		t.Errorf("IPv6 URL: %+v %v", v6, err)
	}
	for _, bad := range []string{
		"stratum+tcp://thepool.com:34254/" + key,          // V1 scheme
		"stratum2+tcp://thepool.com:34254",                // no key
		"stratum2+tcp://thepool.com:34254/",               // empty key
		"stratum2+tcp://thepool.com/" + key,               // no port
		"stratum2+tcp://:34254/" + key,                    // no host
		"stratum2+tcp://thepool.com:34254/" + key[:50],    // truncated key
		"stratum2+tcp://thepool.com:34254/" + key + "x",   // extra char: checksum
		"stratum2+tcp://thepool.com:34254/0OIl" + key[4:], // not base58
	} {
		if _, err := ParseURL(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
	// A different version prefix is refused even with a good checksum.
	var k AuthorityPubKey
	copy(k[:], u.Authority[:])
	payload := append([]byte{2, 0}, k[:]...)
	sum := doubleSHA(payload)
	if _, err := ParseAuthorityPubKey(base58Encode(append(payload, sum[:4]...))); err == nil {
		t.Error("version 2.0 key accepted")
	}
}

func TestSignatureNoiseMessageBytes(t *testing.T) {
	m := SignatureNoiseMessage{Version: 0x0102, ValidFrom: 0x03040506, NotValidAfter: 0x0708090a}
	m.Signature[0], m.Signature[63] = 0xaa, 0xbb
	b := m.Encode(nil)
	if len(b) != SignatureNoiseMessageLen || b[0] != 0x02 || b[1] != 0x01 || b[2] != 0x06 || b[6] != 0x0a || b[10] != 0xaa || b[73] != 0xbb {
		t.Fatalf("encoding %x", b)
	}
	var back SignatureNoiseMessage
	if err := back.Decode(b); err != nil || back != m {
		t.Fatalf("decode: %+v %v", back, err)
	}
	if err := back.Decode(b[:73]); err == nil {
		t.Error("73 bytes accepted")
	}
}
