package stratum2

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcec/v2/ellswift"
)

// Handshake message sizes. The spec's text says 170 for the reply, but its own
// steps add up to 234 (64 + 80 + 90), which is what the reference
// implementation sends.
const (
	HandshakeMsg1Len = 64
	HandshakeMsg2Len = 64 + (64 + MACLen) + (SignatureNoiseMessageLen + MACLen)
)

// Transport sizes: a header is its own AEAD message, the payload is cut into
// chunks of at most maxCTChunk ciphertext bytes each with its own tag.
const (
	EncryptedHeaderLen = HeaderLen + MACLen
	maxCTChunk         = 65535
	maxPTChunk         = maxCTChunk - MACLen
)

// ErrHandshake wraps every handshake failure.
var ErrHandshake = errors.New("stratum2: noise handshake failed")

// ellswiftEncode returns a 64-byte ElligatorSwift encoding of k's public key.
// The encoding is randomised; any of them decodes to the same x.
func ellswiftEncode(k *btcec.PrivateKey) ([64]byte, error) {
	var out [64]byte
	p := k.PubKey()
	var x btcec.FieldVal
	xb := p.X().FillBytes(make([]byte, 32))
	x.SetByteSlice(xb)
	u, t, err := ellswift.XElligatorSwift(&x)
	if err != nil {
		return out, err
	}
	u.PutBytesUnchecked(out[:32])
	t.PutBytesUnchecked(out[32:])
	return out, nil
}

// ellswiftDecodeX returns the x coordinate an ElligatorSwift encoding stands
// for (BIP324's decode: u and t are taken mod p).
func ellswiftDecodeX(e [64]byte) ([32]byte, error) {
	var u, t btcec.FieldVal
	u.SetByteSlice(e[:32])
	u.Normalize()
	t.SetByteSlice(e[32:])
	t.Normalize()
	x, err := ellswift.XSwiftEC(&u, &t)
	var out [32]byte
	if err != nil {
		return out, err
	}
	x.Normalize()
	x.PutBytesUnchecked(out[:])
	return out, nil
}

// ecdh is the spec's ECDH(k, rk): BIP324's v2_ecdh, the tagged hash of both
// ElligatorSwift encodings (initiator's first) and the shared x.
func ecdh(k *btcec.PrivateKey, ours, theirs [64]byte, initiator bool) ([]byte, error) {
	h, err := ellswift.V2Ecdh(k, theirs, ours, initiator)
	if err != nil {
		return nil, err
	}
	return h[:], nil
}

// initiatorHandshake is the client side, split into steps on byte slices so
// tests and fuzzing drive it without sockets.
type initiatorHandshake struct {
	ss   *symmetricState
	e    *btcec.PrivateKey
	eEll [64]byte
}

// newEphemeral makes a fresh key pair and its ElligatorSwift encoding.
func newEphemeral() (*btcec.PrivateKey, [64]byte, error) {
	e, err := btcec.NewPrivateKey()
	if err != nil {
		return nil, [64]byte{}, err
	}
	ell, err := ellswiftEncode(e)
	return e, ell, err
}

func newInitiator() (*initiatorHandshake, []byte, error) {
	e, eEll, err := newEphemeral()
	if err != nil {
		return nil, nil, err
	}
	return newInitiatorWith(e, eEll)
}

func newInitiatorWith(e *btcec.PrivateKey, eEll [64]byte) (*initiatorHandshake, []byte, error) {
	hs := &initiatorHandshake{ss: newSymmetricState(), e: e, eEll: eEll}
	hs.ss.mixHash(eEll[:])
	msg, err := hs.ss.encryptAndHash(eEll[:], nil) // k empty: MixHash of nothing
	return hs, msg, err
}

// readMsg2 processes the responder's 234 bytes, verifies the certificate and
// returns the send and receive CipherStates.
func (hs *initiatorHandshake) readMsg2(msg []byte, authority AuthorityPubKey, now time.Time) (send, recv *cipherState, cert SignatureNoiseMessage, err error) {
	if len(msg) != HandshakeMsg2Len {
		return nil, nil, cert, fmt.Errorf("%w: reply is %d bytes, want %d", ErrHandshake, len(msg), HandshakeMsg2Len)
	}
	ss := hs.ss
	var re [64]byte
	copy(re[:], msg[:64])
	ss.mixHash(re[:])
	ee, err := ecdh(hs.e, hs.eEll, re, true)
	if err != nil {
		return nil, nil, cert, fmt.Errorf("%w: ephemeral key: %v", ErrHandshake, err)
	}
	ss.mixKey(ee)
	rsb, err := ss.decryptAndHash(nil, msg[64:64+64+MACLen])
	if err != nil {
		return nil, nil, cert, fmt.Errorf("%w: static key: %w", ErrHandshake, err)
	}
	var rs [64]byte
	copy(rs[:], rsb)
	es, err := ecdh(hs.e, hs.eEll, rs, true)
	if err != nil {
		return nil, nil, cert, fmt.Errorf("%w: static key: %v", ErrHandshake, err)
	}
	ss.mixKey(es)
	sigb, err := ss.decryptAndHash(nil, msg[64+64+MACLen:])
	if err != nil {
		return nil, nil, cert, fmt.Errorf("%w: certificate: %w", ErrHandshake, err)
	}
	if err := cert.Decode(sigb); err != nil {
		return nil, nil, cert, fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	rsx, err := ellswiftDecodeX(rs)
	if err != nil {
		return nil, nil, cert, fmt.Errorf("%w: static key: %v", ErrHandshake, err)
	}
	if err := cert.Verify(authority, rsx, now); err != nil {
		return nil, nil, cert, fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	c1, c2 := ss.split()
	return c1, c2, cert, nil
}

// responderHandshake is the server side.
type responderHandshake struct {
	ss   *symmetricState
	re   [64]byte
	s    *btcec.PrivateKey
	sEll [64]byte
	cert SignatureNoiseMessage
}

// readMsg1 takes the initiator's 64-byte ephemeral key.
func (hs *responderHandshake) readMsg1(msg []byte) error {
	if len(msg) != HandshakeMsg1Len {
		return fmt.Errorf("%w: first message is %d bytes, want %d", ErrHandshake, len(msg), HandshakeMsg1Len)
	}
	hs.ss = newSymmetricState()
	copy(hs.re[:], msg)
	hs.ss.mixHash(hs.re[:])
	_, err := hs.ss.decryptAndHash(nil, nil)
	return err
}

// writeMsg2 builds the 234-byte reply with ephemeral e and returns the
// responder's receive and send CipherStates.
func (hs *responderHandshake) writeMsg2(e *btcec.PrivateKey, eEll [64]byte) (msg []byte, recv, send *cipherState, err error) {
	ss := hs.ss
	msg = make([]byte, 0, HandshakeMsg2Len)
	msg = append(msg, eEll[:]...)
	ss.mixHash(eEll[:])
	ee, err := ecdh(e, eEll, hs.re, false)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: initiator key: %v", ErrHandshake, err)
	}
	ss.mixKey(ee)
	if msg, err = ss.encryptAndHash(msg, hs.sEll[:]); err != nil {
		return nil, nil, nil, err
	}
	se, err := ecdh(hs.s, hs.sEll, hs.re, false)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: initiator key: %v", ErrHandshake, err)
	}
	ss.mixKey(se)
	var cb [SignatureNoiseMessageLen]byte
	if msg, err = ss.encryptAndHash(msg, hs.cert.Encode(cb[:0])); err != nil {
		return nil, nil, nil, err
	}
	c1, c2 := ss.split()
	return msg, c1, c2, nil
}

// StaticKey is a server's static Noise key with its certificate. The
// ElligatorSwift encoding is computed once: it is the costly part.
type StaticKey struct {
	priv *btcec.PrivateKey
	ell  [64]byte
	cert SignatureNoiseMessage
}

// NewStaticKey prepares a server static key and its certificate.
func NewStaticKey(priv *btcec.PrivateKey, cert SignatureNoiseMessage) (*StaticKey, error) {
	ell, err := ellswiftEncode(priv)
	if err != nil {
		return nil, err
	}
	return &StaticKey{priv: priv, ell: ell, cert: cert}, nil
}

// NewSignedStaticKey makes a fresh static key signed by authority for the
// given validity. Servers call it at start and again before notValidAfter.
func NewSignedStaticKey(authority *btcec.PrivateKey, validFrom, notValidAfter time.Time) (*StaticKey, error) {
	priv, err := btcec.NewPrivateKey()
	if err != nil {
		return nil, err
	}
	cert, err := NewCertificate(authority, priv.PubKey(), validFrom, notValidAfter)
	if err != nil {
		return nil, err
	}
	return NewStaticKey(priv, cert)
}

// Certificate returns the certificate sent with this key.
func (k *StaticKey) Certificate() SignatureNoiseMessage { return k.cert }

// Conn is an encrypted Stratum V2 connection. ReadFrame may run in one
// goroutine while WriteFrame runs in others.
type Conn struct {
	nc net.Conn

	rmu  sync.Mutex
	recv *cipherState
	// br buffers reads after the handshake: a frame is two reads (its
	// header, then its payload), and a busy miner's frames arrive
	// together; one read syscall then serves many. Made on first use.
	br   *bufio.Reader
	rhdr [EncryptedHeaderLen]byte
	rct  []byte
	rpt  []byte
	// MaxPayload bounds accepted frames (0: DefaultMaxPayload); set it
	// before the first ReadFrame.
	MaxPayload int
	rerr       error

	wmu  sync.Mutex
	send *cipherState
	wbuf []byte // ciphertext of the frame being written
	mbuf []byte // plaintext payload WriteMessage encodes into
	werr error

	cert SignatureNoiseMessage
}

// Server runs the responder side of the handshake on nc. The caller bounds
// its duration with nc.SetDeadline and clears the deadline afterwards.
func Server(nc net.Conn, key *StaticKey) (*Conn, error) {
	var m1 [HandshakeMsg1Len]byte
	if _, err := io.ReadFull(nc, m1[:]); err != nil {
		return nil, fmt.Errorf("%w: reading first message: %w", ErrHandshake, err)
	}
	hs := &responderHandshake{s: key.priv, sEll: key.ell, cert: key.cert}
	if err := hs.readMsg1(m1[:]); err != nil {
		return nil, err
	}
	e, eEll, err := newEphemeral()
	if err != nil {
		return nil, err
	}
	msg, recv, send, err := hs.writeMsg2(e, eEll)
	if err != nil {
		return nil, err
	}
	if _, err := nc.Write(msg); err != nil {
		return nil, fmt.Errorf("%w: writing reply: %w", ErrHandshake, err)
	}
	return &Conn{nc: nc, recv: recv, send: send, cert: key.cert}, nil
}

// Client runs the initiator side on nc and verifies the server's certificate
// against authority. The caller bounds it with nc.SetDeadline.
func Client(nc net.Conn, authority AuthorityPubKey) (*Conn, error) {
	hs, m1, err := newInitiator()
	if err != nil {
		return nil, err
	}
	if _, err := nc.Write(m1); err != nil {
		return nil, fmt.Errorf("%w: writing first message: %w", ErrHandshake, err)
	}
	var m2 [HandshakeMsg2Len]byte
	if _, err := io.ReadFull(nc, m2[:]); err != nil {
		return nil, fmt.Errorf("%w: reading reply: %w", ErrHandshake, err)
	}
	send, recv, cert, err := hs.readMsg2(m2[:], authority, time.Now())
	if err != nil {
		return nil, err
	}
	return &Conn{nc: nc, recv: recv, send: send, cert: cert}, nil
}

// Certificate is the server certificate of this connection.
func (c *Conn) Certificate() SignatureNoiseMessage { return c.cert }

// NetConn returns the underlying connection (for deadlines and addresses).
func (c *Conn) NetConn() net.Conn { return c.nc }

// Close closes the underlying connection.
func (c *Conn) Close() error { return c.nc.Close() }

// ctLen is the ciphertext length of a payload of n plaintext bytes.
func ctLen(n int) int {
	full, rem := n/maxPTChunk, n%maxPTChunk
	if rem > 0 {
		rem += MACLen
	}
	return full*maxCTChunk + rem
}

// sealFrame appends the encrypted header and payload chunks to dst; the
// header's length is always the payload's.
func sealFrame(cs *cipherState, dst []byte, h Header, payload []byte) ([]byte, error) {
	h.Length = uint32(len(payload))
	dst, err := cs.encryptWithAd(dst, nil, AppendHeader(cs.scratch[:0], h))
	if err != nil {
		return dst, err
	}
	for len(payload) > 0 {
		n := min(len(payload), maxPTChunk)
		if dst, err = cs.encryptWithAd(dst, nil, payload[:n]); err != nil {
			return dst, err
		}
		payload = payload[n:]
	}
	return dst, nil
}

// WriteFrame encrypts and sends one frame. After an error the connection is
// unusable (the nonce may be spent) and every later call fails.
func (c *Conn) WriteFrame(h Header, payload []byte) error {
	if len(payload) > MaxPayload {
		return ErrFrameLarge
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeLocked(h, payload)
}

func (c *Conn) writeLocked(h Header, payload []byte) error {
	if c.werr != nil {
		return c.werr
	}
	var err error
	c.wbuf, err = sealFrame(c.send, c.wbuf[:0], h, payload)
	if err == nil {
		_, err = c.nc.Write(c.wbuf)
	}
	if cap(c.wbuf) > 1<<16 { // do not pin a large job's buffer for the session
		c.wbuf = nil
	}
	c.werr = err
	return err
}

// WriteMessage encodes m and sends it with the extension type and channel
// bit its type has in the message-type table. An encoding error (a field too
// long) is returned without touching the connection.
func (c *Conn) WriteMessage(m Message) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	p, err := m.Encode(c.mbuf[:0])
	if err != nil {
		return err
	}
	if cap(p) <= 1<<16 {
		c.mbuf = p
	}
	return c.writeLocked(Header{ExtensionType: extensionFor(m.MsgType()), MsgType: m.MsgType()}, p)
}

// WriteMessages encodes and sends several messages in one write (a
// sender that has several queued saves a syscall each).
func (c *Conn) WriteMessages(ms ...Message) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return c.werr
	}
	out := c.wbuf[:0]
	for _, m := range ms {
		p, err := m.Encode(c.mbuf[:0])
		if err != nil {
			return err
		}
		if cap(p) <= 1<<16 {
			c.mbuf = p
		}
		if len(p) > MaxPayload {
			return ErrFrameLarge
		}
		if out, err = sealFrame(c.send, out, Header{ExtensionType: extensionFor(m.MsgType()), MsgType: m.MsgType()}, p); err != nil {
			c.werr = err
			return err
		}
	}
	_, err := c.nc.Write(out)
	c.wbuf = out
	if cap(c.wbuf) > 1<<16 {
		c.wbuf = nil
	}
	c.werr = err
	return err
}

// readFrame decrypts one frame from r into the Conn's buffers.
func (c *Conn) readFrame(r io.Reader) (Frame, error) {
	if _, err := io.ReadFull(r, c.rhdr[:]); err != nil {
		return Frame{}, err
	}
	hp, err := c.recv.decryptWithAd(c.recv.scratch[:0], nil, c.rhdr[:])
	if err != nil {
		return Frame{}, err
	}
	h, _ := ParseHeader(hp)
	max := c.MaxPayload
	if max <= 0 {
		max = DefaultMaxPayload
	}
	if int(h.Length) > max {
		return Frame{}, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameLarge, h.Length, max)
	}
	n := ctLen(int(h.Length))
	if cap(c.rct) < n {
		c.rct = make([]byte, n)
	}
	ct := c.rct[:n]
	if _, err := io.ReadFull(r, ct); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, err
	}
	pt := c.rpt[:0]
	for len(ct) > 0 {
		k := min(len(ct), maxCTChunk)
		if pt, err = c.recv.decryptWithAd(pt, nil, ct[:k]); err != nil {
			return Frame{}, err
		}
		ct = ct[k:]
	}
	c.rpt = pt
	return Frame{Header: h, Payload: pt}, nil
}

// ReadFrame reads and decrypts one frame. The payload aliases a buffer the
// next ReadFrame overwrites. Any error is final: the caller must close.
func (c *Conn) ReadFrame() (Frame, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.rerr != nil {
		return Frame{}, c.rerr
	}
	if c.br == nil {
		c.br = bufio.NewReaderSize(c.nc, 4096)
	}
	f, err := c.readFrame(c.br)
	c.rerr = err
	return f, err
}

// ReadMessage reads a frame and decodes it into a new message. Byte slices in
// the message alias the Conn's buffer until the next read. A frame of an
// unknown type returns ErrUnknownMessage with the connection still usable:
// the frame was authenticated and consumed whole.
func (c *Conn) ReadMessage() (Message, Frame, error) {
	f, err := c.ReadFrame()
	if err != nil {
		return nil, f, err
	}
	m, err := DecodeFrame(f)
	return m, f, err
}
