package tlsreload

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
)

// ClientOptions is how a stratum+ssl client (the miner, the load
// generator) decides to trust a pool. The zero value verifies against the
// system roots, as a browser would.
type ClientOptions struct {
	// CAFile is a PEM bundle trusted in place of the system roots: a
	// pool's own CA, or a dev stack's self-signed certificate.
	CAFile string
	// Fingerprint pins the pool's leaf certificate by its SHA-256 (see
	// ParseFingerprint). With a pin and no CAFile the chain is not
	// verified: the pin alone says which certificate is the pool's,
	// which is what makes a self-signed one usable without a CA file.
	Fingerprint string
	// SkipVerify accepts any certificate: encryption without knowing
	// who is at the other end.
	SkipVerify bool
}

// ParseFingerprint reads a SHA-256 fingerprint as operators copy it: 64
// hex digits, optionally with colons between bytes (openssl x509
// -fingerprint) and a "sha256:" prefix, any case.
func ParseFingerprint(s string) ([32]byte, error) {
	var fp [32]byte
	t := strings.TrimSpace(s)
	if len(t) >= 7 && strings.EqualFold(t[:7], "sha256:") {
		t = t[7:]
	} else if len(t) >= 7 && strings.EqualFold(t[:7], "sha256=") {
		t = t[7:]
	}
	if strings.Contains(t, ":") {
		if len(t) != 32*3-1 {
			return fp, fmt.Errorf("tls fingerprint %q: want 32 colon-separated bytes", truncate(s, 100))
		}
		for i := 2; i < len(t); i += 3 {
			if t[i] != ':' {
				return fp, fmt.Errorf("tls fingerprint %q: want 32 colon-separated bytes", truncate(s, 100))
			}
		}
		t = strings.ReplaceAll(t, ":", "")
	}
	if len(t) != 64 {
		return fp, fmt.Errorf("tls fingerprint %q: want the certificate's SHA-256, 64 hex digits", truncate(s, 100))
	}
	if _, err := hex.Decode(fp[:], []byte(t)); err != nil {
		return fp, fmt.Errorf("tls fingerprint %q: %w", truncate(s, 100), err)
	}
	return fp, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// ErrFingerprintMismatch is a pinned pool presenting another certificate.
var ErrFingerprintMismatch = errors.New("tls: the pool's certificate does not match the pinned fingerprint")

// Config makes the client configuration; ServerName is left for the
// caller to set per pool (Dial-time host), so one Config serves a
// failover list.
func (o ClientOptions) Config() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	var roots *x509.CertPool
	if o.CAFile != "" {
		pemBytes, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls ca: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pemBytes) {
			return nil, fmt.Errorf("tls ca %s: no PEM certificate in it", o.CAFile)
		}
		cfg.RootCAs = roots
	}
	var pin *[32]byte
	if o.Fingerprint != "" {
		fp, err := ParseFingerprint(o.Fingerprint)
		if err != nil {
			return nil, err
		}
		pin = &fp
	}
	switch {
	case o.SkipVerify:
		cfg.InsecureSkipVerify = true
	case pin != nil:
		// The standard verification cannot be kept for the pin alone (a
		// self-signed leaf fails it), so it is redone here when a CA
		// file asks for it too.
		cfg.InsecureSkipVerify = true
		verifyChain := roots != nil
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("tls: the pool sent no certificate")
			}
			leaf := cs.PeerCertificates[0]
			if sum := sha256.Sum256(leaf.Raw); !bytes.Equal(sum[:], pin[:]) {
				return fmt.Errorf("%w (it is sha256:%x)", ErrFingerprintMismatch, sum)
			}
			if !verifyChain {
				return nil
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: cs.ServerName})
			return err
		}
	}
	return cfg, nil
}

// IsUntrusted reports whether a handshake failed because the client did
// not trust the pool's certificate, the failure a flag fixes.
func IsUntrusted(err error) bool {
	var verr *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	return errors.As(err, &verr) || errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci) ||
		errors.Is(err, ErrFingerprintMismatch)
}
