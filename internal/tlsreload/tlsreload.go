// Package tlsreload serves a certificate and key from files and picks up
// new ones when the files change, so an operator (or certbot) renews a
// pool's stratum+ssl certificate without restarting it and dropping every
// miner. A pair that fails to load (a half-written file, a key that does
// not match) leaves the previous one in service and is reported once.
// ClientOptions is the other side: how a miner decides to trust a pool.
package tlsreload

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// Certs is the certificate in service. It is safe for concurrent use.
type Certs struct {
	certFile, keyFile string
	log               *slog.Logger
	// checkEvery bounds how often the files are looked at: handshakes may
	// come by the thousand per second.
	checkEvery time.Duration
	now        func() time.Time

	mu        sync.Mutex
	cert      *tls.Certificate
	stamp     [2]fileStamp
	checked   time.Time
	failStamp [2]fileStamp // the pair last refused, reported once
}

type fileStamp struct {
	mod  time.Time
	size int64
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{fi.ModTime(), fi.Size()}, nil
}

// Load reads the pair once; it fails if the first pair does not load.
func Load(certFile, keyFile string, log *slog.Logger) (*Certs, error) {
	if log == nil {
		log = slog.Default()
	}
	c := &Certs{certFile: certFile, keyFile: keyFile, log: log, checkEvery: time.Second, now: time.Now}
	cert, stamp, err := c.read()
	if err != nil {
		return nil, err
	}
	c.cert, c.stamp, c.checked = cert, stamp, c.now()
	return c, nil
}

func (c *Certs) read() (*tls.Certificate, [2]fileStamp, error) {
	var stamp [2]fileStamp
	var err error
	if stamp[0], err = stampOf(c.certFile); err != nil {
		return nil, stamp, fmt.Errorf("tls certificate: %w", err)
	}
	if stamp[1], err = stampOf(c.keyFile); err != nil {
		return nil, stamp, fmt.Errorf("tls key: %w", err)
	}
	certPEM, err := os.ReadFile(c.certFile)
	if err != nil {
		return nil, stamp, fmt.Errorf("tls certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(c.keyFile)
	if err != nil {
		return nil, stamp, fmt.Errorf("tls key: %w", err)
	}
	cert, err := Parse(certPEM, keyPEM)
	return cert, stamp, err
}

// Parse makes a certificate from PEM blocks: the chain (leaf first) and
// its private key, which must match.
func Parse(certPEM, keyPEM []byte) (*tls.Certificate, error) {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("tls pair: %w", err)
	}
	if len(cert.Certificate) == 0 {
		return nil, errors.New("tls pair: no certificate")
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("tls certificate: %w", err)
	}
	cert.Leaf = leaf
	return &cert, nil
}

// Current returns the certificate in service, reloading it first if the
// files changed since the last look (at most once per checkEvery).
func (c *Certs) Current() *tls.Certificate {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if now.Sub(c.checked) < c.checkEvery {
		return c.cert
	}
	c.checked = now
	s0, err0 := stampOf(c.certFile)
	s1, err1 := stampOf(c.keyFile)
	if err0 != nil || err1 != nil || ([2]fileStamp{s0, s1}) == c.stamp || ([2]fileStamp{s0, s1}) == c.failStamp {
		return c.cert
	}
	cert, stamp, err := c.read()
	if err != nil {
		c.failStamp = stamp
		c.log.Error("tls: new certificate files do not load; keeping the one in service",
			"cert", c.certFile, "key", c.keyFile, "err", err, "in_service_until", c.cert.Leaf.NotAfter)
		return c.cert
	}
	c.cert, c.stamp, c.failStamp = cert, stamp, [2]fileStamp{}
	c.log.Info("tls: certificate reloaded", "cert", c.certFile, "subject", cert.Leaf.Subject.String(),
		"not_after", cert.Leaf.NotAfter)
	return c.cert
}

// Config returns a server configuration that serves the current pair.
func (c *Certs) Config() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return c.Current(), nil
		},
	}
}
