package tlsreload

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

type fakeClock struct{ t time.Time }

func (f *fakeClock) now() time.Time { return f.t }

func pair(t *testing.T, dir, name string) (string, string) {
	t.Helper()
	c, k := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := WriteSelfSigned(c, k, []string{"127.0.0.1", "localhost"}, 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	return c, k
}

func TestReloadsChangedFilesAndKeepsTheOldOnBadOnes(t *testing.T) {
	dir := t.TempDir()
	cf, kf := pair(t, dir, "live")
	var logs bytes.Buffer
	c, err := Load(cf, kf, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	clk := &fakeClock{time.Now()}
	c.now = clk.now
	first := c.Current()
	if first.Leaf == nil || first.Leaf.IPAddresses[0].String() != "127.0.0.1" {
		t.Fatalf("leaf %+v", first.Leaf)
	}

	// A renewed pair (another key) replaces it once the check is due.
	c2, k2 := pair(t, dir, "next")
	mustCopy(t, k2, kf)
	mustCopy(t, c2, cf)
	bump(t, cf, kf)
	if c.Current() != first {
		t.Fatal("files looked at before checkEvery passed")
	}
	clk.t = clk.t.Add(2 * time.Second)
	second := c.Current()
	if second == first || !bytes.Equal(second.Certificate[0], readDER(t, c2)) {
		t.Fatal("renewed pair not taken")
	}

	// A half-written certificate (key of the next pair not there yet)
	// keeps the pair in service, and is reported once.
	c3, _ := pair(t, dir, "third")
	mustCopy(t, c3, cf)
	bump(t, cf, kf)
	for range 3 {
		clk.t = clk.t.Add(2 * time.Second)
		if c.Current() != second {
			t.Fatal("a mismatched pair replaced the one in service")
		}
	}
	if n := bytes.Count(logs.Bytes(), []byte("do not load")); n != 1 {
		t.Fatalf("bad pair reported %d times:\n%s", n, logs.String())
	}
}

func TestServesHandshakes(t *testing.T) {
	dir := t.TempDir()
	cf, kf := pair(t, dir, "srv")
	c, err := Load(cf, kf, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", c.Config())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			// The write drives the handshake; a client that refuses the
			// certificate ends it with an alert.
			_, _ = conn.Write([]byte("hi\n"))
			conn.Close()
		}
	}()
	roots := x509.NewCertPool()
	pemBytes, _ := os.ReadFile(cf)
	roots.AppendCertsFromPEM(pemBytes)
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("handshake with the self-signed pair trusted: %v", err)
	}
	conn.Close()
	if _, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{ServerName: "127.0.0.1"}); err == nil {
		t.Fatal("untrusted self-signed certificate accepted by a verifying client")
	}
	if fp, err := Fingerprint(cf); err != nil || len(fp) != 64 {
		t.Fatalf("Fingerprint = %q, %v", fp, err)
	}
}

func TestLoadRefusesBadFirstPair(t *testing.T) {
	dir := t.TempDir()
	cf, _ := pair(t, dir, "a")
	_, kb := pair(t, dir, "b")
	if _, err := Load(cf, kb, nil); err == nil {
		t.Fatal("mismatched key accepted")
	}
	if _, err := Load(filepath.Join(dir, "none"), kb, nil); err == nil {
		t.Fatal("missing certificate accepted")
	}
}

func FuzzParse(f *testing.F) {
	dir := f.TempDir()
	cf, kf := filepath.Join(dir, "c"), filepath.Join(dir, "k")
	if err := WriteSelfSigned(cf, kf, []string{"localhost"}, time.Hour); err != nil {
		f.Fatal(err)
	}
	cb, _ := os.ReadFile(cf)
	kb, _ := os.ReadFile(kf)
	f.Add(cb, kb)
	f.Add(cb[:len(cb)/2], kb)
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"), kb)
	f.Fuzz(func(t *testing.T, certPEM, keyPEM []byte) {
		cert, err := Parse(certPEM, keyPEM)
		if err != nil {
			return
		}
		if cert.Leaf == nil || len(cert.Certificate) == 0 || cert.PrivateKey == nil {
			t.Fatalf("Parse accepted an incomplete pair: %+v", cert)
		}
		// What is served (Certificate[0]) is the leaf the reload logs and
		// checks, and the key is that leaf's.
		if !bytes.Equal(cert.Leaf.Raw, cert.Certificate[0]) {
			t.Fatal("Leaf is not the first certificate of the chain")
		}
		pub, ok := cert.PrivateKey.(crypto.Signer)
		if !ok {
			t.Fatalf("private key %T cannot sign", cert.PrivateKey)
		}
		if eq, ok := pub.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !eq.Equal(cert.Leaf.PublicKey) {
			t.Fatal("private key does not match the leaf's public key")
		}
	})
}

func mustCopy(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeAtomic(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// bump moves the files' times forward so a same-size rewrite within the
// file system's time granularity is still seen as a change.
var bumps int

func bump(t *testing.T, files ...string) {
	t.Helper()
	bumps++
	for _, f := range files {
		ts := time.Now().Add(time.Duration(bumps) * time.Minute)
		if err := os.Chtimes(f, ts, ts); err != nil {
			t.Fatal(err)
		}
	}
}

func readDER(t *testing.T, certFile string) []byte {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(certFile, certFile[:len(certFile)-4]+".key")
	if err != nil {
		t.Fatal(err)
	}
	return cert.Certificate[0]
}
