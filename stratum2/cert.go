package stratum2

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"strings"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcec/v2/schnorr"
)

// SignatureNoiseMessageLen is the plaintext certificate the responder sends.
const SignatureNoiseMessageLen = 2 + 4 + 4 + 64

// CertVersion is the certificate format version we sign. The spec does not
// fix a value, so verification accepts any: it is covered by the signature.
const CertVersion = 0

// AllowedClockSkew is how far outside its validity a certificate is still
// accepted, so a miner whose clock is a little off can connect.
const AllowedClockSkew = 2 * time.Minute

// Certificate errors; a client shows them to the operator as they are.
var (
	ErrCertSignature   = errors.New("stratum2: server certificate is not signed by the authority key in the URL")
	ErrCertExpired     = errors.New("stratum2: server certificate expired")
	ErrCertNotYetValid = errors.New("stratum2: server certificate not yet valid")
)

// SignatureNoiseMessage is the certificate body sent encrypted in the
// handshake: the server's static key is signed by the pool authority for a
// validity window.
type SignatureNoiseMessage struct {
	Version       uint16
	ValidFrom     uint32 // unix seconds
	NotValidAfter uint32 // unix seconds
	Signature     [64]byte
}

// Encode appends the 74-byte form.
func (m *SignatureNoiseMessage) Encode(b []byte) []byte {
	b = appendU16(b, m.Version)
	b = appendU32(b, m.ValidFrom)
	b = appendU32(b, m.NotValidAfter)
	return append(b, m.Signature[:]...)
}

// Decode parses exactly 74 bytes.
func (m *SignatureNoiseMessage) Decode(p []byte) error {
	if len(p) != SignatureNoiseMessageLen {
		return fmt.Errorf("stratum2: signature noise message is %d bytes, want %d", len(p), SignatureNoiseMessageLen)
	}
	r := reader{b: p}
	m.Version = r.u16()
	m.ValidFrom = r.u32()
	m.NotValidAfter = r.u32()
	copy(m.Signature[:], r.take(64))
	return r.err
}

// signedHash is m = SHA-256(version || valid_from || not_valid_after ||
// server_static_x), the message the authority signs (BIP340).
func (m *SignatureNoiseMessage) signedHash(serverX [32]byte) [32]byte {
	var buf [2 + 4 + 4 + 32]byte
	b := appendU16(buf[:0], m.Version)
	b = appendU32(b, m.ValidFrom)
	b = appendU32(b, m.NotValidAfter)
	b = append(b, serverX[:]...)
	return sha256.Sum256(b)
}

// NewCertificate signs the server's static public key with the authority key
// for [validFrom, notValidAfter].
func NewCertificate(authority *btcec.PrivateKey, serverStatic *btcec.PublicKey, validFrom, notValidAfter time.Time) (SignatureNoiseMessage, error) {
	m := SignatureNoiseMessage{
		Version:       CertVersion,
		ValidFrom:     uint32(validFrom.Unix()),
		NotValidAfter: uint32(notValidAfter.Unix()),
	}
	h := m.signedHash(xOnly(serverStatic))
	sig, err := schnorr.Sign(authority, h[:])
	if err != nil {
		return m, err
	}
	copy(m.Signature[:], sig.Serialize())
	return m, nil
}

// Verify checks the signature over the server's x-only static key against
// the authority key, and the validity window at now (± AllowedClockSkew).
func (m *SignatureNoiseMessage) Verify(authority AuthorityPubKey, serverX [32]byte, now time.Time) error {
	pub, err := schnorr.ParsePubKey(authority[:])
	if err != nil {
		return fmt.Errorf("stratum2: authority key: %w", err)
	}
	sig, err := schnorr.ParseSignature(m.Signature[:])
	if err != nil {
		return ErrCertSignature
	}
	h := m.signedHash(serverX)
	if !sig.Verify(h[:], pub) {
		return ErrCertSignature
	}
	t := now.Unix()
	skew := int64(AllowedClockSkew / time.Second)
	if t+skew < int64(m.ValidFrom) {
		return fmt.Errorf("%w: valid from %s", ErrCertNotYetValid, time.Unix(int64(m.ValidFrom), 0).UTC().Format(time.RFC3339))
	}
	if t-skew > int64(m.NotValidAfter) {
		return fmt.Errorf("%w: not valid after %s", ErrCertExpired, time.Unix(int64(m.NotValidAfter), 0).UTC().Format(time.RFC3339))
	}
	return nil
}

func xOnly(p *btcec.PublicKey) [32]byte {
	var x [32]byte
	copy(x[:], schnorr.SerializePubKey(p))
	return x
}

// AuthorityPubKey is the pool authority's x-only public key (BIP340).
type AuthorityPubKey [32]byte

// AuthorityPubKeyOf returns the x-only public key of an authority secret.
func AuthorityPubKeyOf(k *btcec.PrivateKey) AuthorityPubKey {
	return AuthorityPubKey(xOnly(k.PubKey()))
}

// authorityKeyVersion is the LE u16 prefix [1, 0] the spec puts before the key
// in its base58check form.
var authorityKeyVersion = [2]byte{1, 0}

// String is the base58check form miners put in the URL.
func (k AuthorityPubKey) String() string {
	payload := make([]byte, 0, 2+32+4)
	payload = append(payload, authorityKeyVersion[:]...)
	payload = append(payload, k[:]...)
	sum := doubleSHA(payload)
	return base58Encode(append(payload, sum[:4]...))
}

// ParseAuthorityPubKey parses the base58check form, checking its checksum,
// version prefix and that the key is a valid curve point.
func ParseAuthorityPubKey(s string) (AuthorityPubKey, error) {
	var k AuthorityPubKey
	raw, err := base58Decode(s)
	if err != nil {
		return k, err
	}
	if len(raw) != 2+32+4 {
		return k, fmt.Errorf("stratum2: authority key is %d bytes, want 38", len(raw))
	}
	sum := doubleSHA(raw[:34])
	if !bytes.Equal(sum[:4], raw[34:]) {
		return k, errors.New("stratum2: authority key checksum mismatch")
	}
	if raw[0] != authorityKeyVersion[0] || raw[1] != authorityKeyVersion[1] {
		return k, fmt.Errorf("stratum2: authority key version %d.%d, want 1.0", raw[0], raw[1])
	}
	copy(k[:], raw[2:34])
	if _, err := schnorr.ParsePubKey(k[:]); err != nil {
		return k, fmt.Errorf("stratum2: authority key is not a curve point: %w", err)
	}
	return k, nil
}

func doubleSHA(b []byte) [32]byte {
	h := sha256.Sum256(b)
	return sha256.Sum256(h[:])
}

const b58Alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

func base58Encode(b []byte) string {
	x := new(big.Int).SetBytes(b)
	base, mod := big.NewInt(58), new(big.Int)
	var out []byte
	for x.Sign() > 0 {
		x.DivMod(x, base, mod)
		out = append(out, b58Alphabet[mod.Int64()])
	}
	for _, c := range b {
		if c != 0 {
			break
		}
		out = append(out, '1')
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return string(out)
}

// base58Decode refuses long inputs before the big-number work: an authority
// key is 51 characters, and a hostile URL must not cost quadratic time.
func base58Decode(s string) ([]byte, error) {
	if len(s) == 0 || len(s) > 128 {
		return nil, fmt.Errorf("stratum2: base58 string of %d characters", len(s))
	}
	x, base := new(big.Int), big.NewInt(58)
	zeros := 0
	for zeros < len(s) && s[zeros] == '1' {
		zeros++
	}
	for i := 0; i < len(s); i++ {
		d := strings.IndexByte(b58Alphabet, s[i])
		if d < 0 {
			return nil, fmt.Errorf("stratum2: %q is not a base58 character", s[i])
		}
		x.Mul(x, base)
		x.Add(x, big.NewInt(int64(d)))
	}
	return append(make([]byte, zeros), x.Bytes()...), nil
}

// URL is a parsed stratum2+tcp://HOST:PORT/AUTHORITY_PUBKEY.
type URL struct {
	Addr      string // host:port for net.Dial
	Authority AuthorityPubKey
}

// URLScheme is the scheme of a Stratum V2 URL.
const URLScheme = "stratum2+tcp"

// ParseURL parses a Stratum V2 URL. The authority key is required: without it
// the server cannot be authenticated and the encryption protects nothing.
func ParseURL(s string) (URL, error) {
	var u URL
	rest, ok := strings.CutPrefix(s, URLScheme+"://")
	if !ok {
		return u, fmt.Errorf("stratum2: URL %q does not start with %s://", s, URLScheme)
	}
	hostport, key, ok := strings.Cut(rest, "/")
	if !ok || key == "" {
		return u, fmt.Errorf("stratum2: URL %q has no authority public key after the address", s)
	}
	key = strings.TrimSuffix(key, "/")
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return u, fmt.Errorf("stratum2: URL %q: %w", s, err)
	}
	if host == "" || port == "" {
		return u, fmt.Errorf("stratum2: URL %q needs host and port", s)
	}
	if u.Authority, err = ParseAuthorityPubKey(key); err != nil {
		return u, err
	}
	u.Addr = net.JoinHostPort(host, port)
	return u, nil
}

// String formats the URL back.
func (u URL) String() string { return URLScheme + "://" + u.Addr + "/" + u.Authority.String() }

// GenerateAuthorityKeyFile creates a new authority secret in path (hex, mode
// 0600). It refuses to overwrite: replacing the key invalidates every miner's
// URL, so rotation is a deliberate act (see docs/stratum-v2.md).
func GenerateAuthorityKeyFile(path string) (*btcec.PrivateKey, error) {
	var sk [32]byte
	var k *btcec.PrivateKey
	for {
		if _, err := rand.Read(sk[:]); err != nil {
			return nil, err
		}
		var s btcec.ModNScalar
		if overflow := s.SetBytes(&sk); overflow == 0 && !s.IsZero() {
			k = btcec.PrivKeyFromScalar(&s)
			break
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	if _, err := f.WriteString(hex.EncodeToString(sk[:]) + "\n"); err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return nil, err
	}
	return k, nil
}

// LoadAuthorityKeyFile reads a key written by GenerateAuthorityKeyFile. It
// refuses a file others can read, as ssh does for private keys.
func LoadAuthorityKeyFile(path string) (*btcec.PrivateKey, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("stratum2: authority key %s is readable by others (mode %v); chmod 600 it", path, st.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	sk, err := hex.DecodeString(strings.TrimSpace(string(data)))
	if err != nil || len(sk) != 32 {
		return nil, fmt.Errorf("stratum2: authority key %s: want 64 hex characters", path)
	}
	var s btcec.ModNScalar
	if overflow := s.SetByteSlice(sk); overflow || s.IsZero() {
		return nil, fmt.Errorf("stratum2: authority key %s is not a valid secp256k1 secret", path)
	}
	return btcec.PrivKeyFromScalar(&s), nil
}

// LoadOrGenerateAuthorityKeyFile loads path, creating it first if missing.
func LoadOrGenerateAuthorityKeyFile(path string) (*btcec.PrivateKey, error) {
	k, err := LoadAuthorityKeyFile(path)
	if errors.Is(err, os.ErrNotExist) {
		k, err = GenerateAuthorityKeyFile(path)
		if errors.Is(err, os.ErrExist) { // another process created it first
			return LoadAuthorityKeyFile(path)
		}
	}
	return k, err
}
