package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/hashforge/hashforge/internal/tlsreload"
)

// TestClientTLSFlags: mine's and loadtest's TLS flags, as parsed: skip
// verify is warned about and not mixed with a CA or a pin; a bad pin or
// CA file is refused before anything is dialled.
func TestClientTLSFlags(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	if c, err := clientTLSConfig(tlsreload.ClientOptions{SkipVerify: true}, log); err != nil || !c.InsecureSkipVerify {
		t.Fatalf("--tls-skip-verify: %+v, %v", c, err)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "--tls-skip-verify") {
		t.Errorf("--tls-skip-verify not warned about: %s", logs.String())
	}
	cf, _ := writePair(t, t.TempDir(), "ca")
	for _, o := range []tlsreload.ClientOptions{
		{SkipVerify: true, CAFile: cf},
		{SkipVerify: true, Fingerprint: strings.Repeat("ab", 32)},
		{Fingerprint: "abcd"},
		{CAFile: cf + ".missing"},
	} {
		if _, err := clientTLSConfig(o, log); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	c, err := clientTLSConfig(tlsreload.ClientOptions{CAFile: cf, Fingerprint: mustFingerprint(t, cf)}, log)
	if err != nil || c.RootCAs == nil || c.VerifyConnection == nil {
		t.Errorf("--tls-ca with --tls-fingerprint: %+v, %v", c, err)
	}
	// The flags are declared for both commands, under their names.
	for _, cmd := range []func([]string) error{cmdMine, cmdLoadtest} {
		if err := cmd([]string{"--url", "stratum+ssl://127.0.0.1:1", "--user", "x", "--tls-fingerprint", "nothex"}); err == nil ||
			!strings.Contains(err.Error(), "fingerprint") {
			t.Errorf("a bad --tls-fingerprint: %v", err)
		}
	}
}
