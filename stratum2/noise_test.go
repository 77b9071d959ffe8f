package stratum2

import (
	"bytes"
	"errors"
	"io"
	"net"
	"reflect"
	"testing"
	"time"
)

type result struct {
	c   *Conn
	err error
}

// handshake runs Server on one end and Client on the other and returns both.
func handshake(t *testing.T, a, b net.Conn, sk *StaticKey, auth AuthorityPubKey) (srv, cli *Conn, srvErr, cliErr error) {
	t.Helper()
	ch := make(chan result, 1)
	go func() {
		c, err := Server(a, sk)
		if err != nil {
			a.Close() // unblock the client as a real server would
		}
		ch <- result{c, err}
	}()
	cli, cliErr = Client(b, auth)
	if cliErr != nil {
		b.Close()
	}
	r := <-ch
	return r.c, cli, r.err, cliErr
}

// exchange sends every sample message both ways and checks what arrives.
func exchange(t *testing.T, srv, cli *Conn) {
	t.Helper()
	for _, dir := range []struct {
		name     string
		from, to *Conn
	}{{"client→server", cli, srv}, {"server→client", srv, cli}} {
		done := make(chan error, 1)
		msgs := sampleMessages()
		go func() {
			for _, m := range msgs {
				if err := dir.from.WriteMessage(m); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
		for _, want := range msgs {
			got, _, err := dir.to.ReadMessage()
			if err != nil {
				t.Fatalf("%s: %v", dir.name, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%s: got %+v want %+v", dir.name, got, want)
			}
		}
		if err := <-done; err != nil {
			t.Fatalf("%s write: %v", dir.name, err)
		}
	}
}

func TestHandshakePipe(t *testing.T) {
	auth, sk := testServer(t)
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	srv, cli, se, ce := handshake(t, a, b, sk, AuthorityPubKeyOf(auth))
	if se != nil || ce != nil {
		t.Fatalf("server %v, client %v", se, ce)
	}
	if cli.Certificate() != sk.Certificate() {
		t.Errorf("client saw certificate %+v, want %+v", cli.Certificate(), sk.Certificate())
	}
	exchange(t, srv, cli)
}

func TestHandshakeTCP(t *testing.T) {
	auth, sk := testServer(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(acc)
			return
		}
		acc <- c
	}()
	b, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	a := <-acc
	if a == nil {
		t.Fatal("accept failed")
	}
	defer a.Close()
	srv, cli, se, ce := handshake(t, a, b, sk, AuthorityPubKeyOf(auth))
	if se != nil || ce != nil {
		t.Fatalf("server %v, client %v", se, ce)
	}
	exchange(t, srv, cli)

	// A payload spanning three Noise chunks (65519 + 65519 + rest).
	big := bytes.Repeat([]byte{0x5a}, 2*maxPTChunk+100)
	srv.MaxPayload = len(big)
	go func() { cli.WriteFrame(Header{MsgType: 0x7f}, big) }()
	f, err := srv.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(f.Payload, big) || f.MsgType != 0x7f {
		t.Fatalf("multi-chunk payload: %d bytes back, type %x", len(f.Payload), f.MsgType)
	}
}

func TestCtLen(t *testing.T) {
	for _, c := range [][2]int{{0, 0}, {1, 17}, {maxPTChunk, maxCTChunk}, {maxPTChunk + 1, maxCTChunk + 17}, {2 * maxPTChunk, 2 * maxCTChunk}} {
		if got := ctLen(c[0]); got != c[1] {
			t.Errorf("ctLen(%d) = %d, want %d", c[0], got, c[1])
		}
	}
}

func TestHandshakeWrongAuthority(t *testing.T) {
	_, sk := testServer(t)
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	_, _, _, ce := handshake(t, a, b, sk, AuthorityPubKeyOf(testKey("someone else")))
	if !errors.Is(ce, ErrCertSignature) {
		t.Fatalf("client error %v, want ErrCertSignature", ce)
	}
}

func TestHandshakeCertValidity(t *testing.T) {
	auth := testKey("authority")
	now := time.Now()
	for _, c := range []struct {
		name     string
		from, to time.Time
		want     error
	}{
		{"expired", now.Add(-2 * time.Hour), now.Add(-time.Hour), ErrCertExpired},
		{"not yet valid", now.Add(time.Hour), now.Add(2 * time.Hour), ErrCertNotYetValid},
		{"expired within skew", now.Add(-time.Hour), now.Add(-AllowedClockSkew / 2), nil},
		{"starts within skew", now.Add(AllowedClockSkew / 2), now.Add(time.Hour), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			cert, err := NewCertificate(auth, testKey("static").PubKey(), c.from, c.to)
			if err != nil {
				t.Fatal(err)
			}
			sk, err := NewStaticKey(testKey("static"), cert)
			if err != nil {
				t.Fatal(err)
			}
			a, b := net.Pipe()
			defer a.Close()
			defer b.Close()
			_, _, _, ce := handshake(t, a, b, sk, AuthorityPubKeyOf(auth))
			if c.want == nil && ce != nil || c.want != nil && !errors.Is(ce, c.want) {
				t.Fatalf("client error %v, want %v", ce, c.want)
			}
		})
	}
}

// A certificate signed for another static key must not authenticate this one.
func TestHandshakeCertForOtherKey(t *testing.T) {
	auth := testKey("authority")
	now := time.Now()
	cert, _ := NewCertificate(auth, testKey("other static").PubKey(), now.Add(-time.Hour), now.Add(time.Hour))
	sk, _ := NewStaticKey(testKey("static"), cert)
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if _, _, _, ce := handshake(t, a, b, sk, AuthorityPubKeyOf(auth)); !errors.Is(ce, ErrCertSignature) {
		t.Fatalf("client error %v, want ErrCertSignature", ce)
	}
}

// Flipping any bit of the responder's reply fails the handshake: the ephemeral
// key changes every later key, and the two encrypted parts carry tags.
func TestHandshakeFlippedBit(t *testing.T) {
	auth, sk := testServer(t)
	for _, pos := range []int{0, 63, 64, 100, 143, 144, 200, 233} {
		ini, m1, err := newInitiator()
		if err != nil {
			t.Fatal(err)
		}
		resp := &responderHandshake{s: sk.priv, sEll: sk.ell, cert: sk.cert}
		if err := resp.readMsg1(m1); err != nil {
			t.Fatal(err)
		}
		m2, _, _, err := resp.writeMsg2(testKey("eph"), mustEll(t, testKey("eph")))
		if err != nil {
			t.Fatal(err)
		}
		m2[pos] ^= 0x01
		if _, _, _, err := ini.readMsg2(m2, AuthorityPubKeyOf(auth), time.Now()); !errors.Is(err, ErrHandshake) {
			t.Errorf("bit flipped at %d: %v, want a handshake failure", pos, err)
		}
	}
	// And the first message: the responder cannot tell, but the keys then
	// disagree and the client refuses the reply.
	ini, m1, _ := newInitiator()
	m1[5] ^= 0x80
	resp := &responderHandshake{s: sk.priv, sEll: sk.ell, cert: sk.cert}
	if err := resp.readMsg1(m1); err != nil {
		t.Fatal(err)
	}
	m2, _, _, err := resp.writeMsg2(testKey("eph"), mustEll(t, testKey("eph")))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := ini.readMsg2(m2, AuthorityPubKeyOf(auth), time.Now()); !errors.Is(err, ErrDecrypt) {
		t.Errorf("flipped first message: %v, want ErrDecrypt", err)
	}
}

func TestHandshakeShortReply(t *testing.T) {
	auth, sk := testServer(t)
	a, b := net.Pipe()
	defer b.Close()
	go func() {
		io.ReadFull(a, make([]byte, HandshakeMsg1Len))
		a.Write(make([]byte, 100)) // then hang up
		a.Close()
	}()
	_ = sk
	if _, err := Client(b, AuthorityPubKeyOf(auth)); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short reply: %v, want ErrUnexpectedEOF", err)
	}
}

func mustEll(t testing.TB, k interface{}) [64]byte {
	t.Helper()
	e, err := ellswiftEncode(testKeyCast(k))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// pairedStates returns the transport states of a completed in-memory
// handshake: client send/recv and server recv/send.
func pairedStates(t testing.TB) (cSend, cRecv, sRecv, sSend *cipherState) {
	t.Helper()
	auth, sk := testServer(t)
	ini, m1, err := newInitiatorWith(testKey("ie"), mustEll(t, testKey("ie")))
	if err != nil {
		t.Fatal(err)
	}
	resp := &responderHandshake{s: sk.priv, sEll: sk.ell, cert: sk.cert}
	if err := resp.readMsg1(m1); err != nil {
		t.Fatal(err)
	}
	m2, sRecv, sSend, err := resp.writeMsg2(testKey("re"), mustEll(t, testKey("re")))
	if err != nil {
		t.Fatal(err)
	}
	cSend, cRecv, _, err = ini.readMsg2(m2, AuthorityPubKeyOf(auth), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return
}

func sealed(t testing.TB, cs *cipherState, m Message) []byte {
	t.Helper()
	p, err := m.Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	out, err := sealFrame(cs, nil, Header{ExtensionType: extensionFor(m.MsgType()), MsgType: m.MsgType()}, p)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func readerConn(recv *cipherState) *Conn { return &Conn{recv: recv} }

func TestTransportRefusals(t *testing.T) {
	share := sampleMessages()[16]
	t.Run("flipped bit", func(t *testing.T) {
		for _, pos := range []int{0, 10, 21, 22, 30, 60} {
			cSend, _, sRecv, _ := pairedStates(t)
			w := sealed(t, cSend, share)
			if pos >= len(w) {
				t.Fatalf("pos %d beyond %d-byte frame", pos, len(w))
			}
			w[pos] ^= 0x04
			if _, err := readerConn(sRecv).readFrame(bytes.NewReader(w)); !errors.Is(err, ErrDecrypt) {
				t.Errorf("bit flipped at %d: %v, want ErrDecrypt", pos, err)
			}
		}
	})
	t.Run("replayed frame", func(t *testing.T) {
		cSend, _, sRecv, _ := pairedStates(t)
		w := sealed(t, cSend, share)
		rc := readerConn(sRecv)
		if _, err := rc.readFrame(bytes.NewReader(w)); err != nil {
			t.Fatal(err)
		}
		if _, err := rc.readFrame(bytes.NewReader(w)); !errors.Is(err, ErrDecrypt) {
			t.Errorf("replay: %v, want ErrDecrypt", err)
		}
	})
	t.Run("reordered frames", func(t *testing.T) {
		cSend, _, sRecv, _ := pairedStates(t)
		sealed(t, cSend, share) // frame 1, never delivered first
		w2 := sealed(t, cSend, share)
		if _, err := readerConn(sRecv).readFrame(bytes.NewReader(w2)); !errors.Is(err, ErrDecrypt) {
			t.Errorf("second frame first: %v, want ErrDecrypt", err)
		}
	})
	t.Run("wrong direction", func(t *testing.T) {
		// A frame the client sealed, fed back to the client's own receiver.
		cSend, cRecv, _, _ := pairedStates(t)
		if _, err := readerConn(cRecv).readFrame(bytes.NewReader(sealed(t, cSend, share))); !errors.Is(err, ErrDecrypt) {
			t.Errorf("reflected frame: %v, want ErrDecrypt", err)
		}
	})
	t.Run("truncated", func(t *testing.T) {
		cSend, _, sRecv, _ := pairedStates(t)
		w := sealed(t, cSend, share)
		for _, n := range []int{0, 5, EncryptedHeaderLen, len(w) - 1} {
			st := *sRecv
			_, err := readerConn(&st).readFrame(bytes.NewReader(w[:n]))
			want := io.ErrUnexpectedEOF
			if n == 0 {
				want = io.EOF
			}
			if !errors.Is(err, want) {
				t.Errorf("%d of %d bytes: %v, want %v", n, len(w), err, want)
			}
		}
	})
	t.Run("oversized", func(t *testing.T) {
		cSend, _, sRecv, _ := pairedStates(t)
		var hb [HeaderLen]byte
		w, _ := cSend.encryptWithAd(nil, nil, AppendHeader(hb[:0], Header{MsgType: 0x1b, Length: MaxPayload}))
		if _, err := readerConn(sRecv).readFrame(bytes.NewReader(w)); !errors.Is(err, ErrFrameLarge) {
			t.Errorf("16 MiB header: %v, want ErrFrameLarge", err)
		}
	})
}

// After a failed read the Conn stays failed: it never resynchronises on a
// later, valid frame.
func TestConnReadErrorIsFinal(t *testing.T) {
	auth, sk := testServer(t)
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	srv, cli, se, ce := handshake(t, a, b, sk, AuthorityPubKeyOf(auth))
	if se != nil || ce != nil {
		t.Fatal(se, ce)
	}
	go func() {
		var raw [EncryptedHeaderLen]byte
		b.Write(raw[:]) // garbage where a header belongs
	}()
	if _, err := srv.ReadFrame(); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("garbage: %v", err)
	}
	go cli.WriteMessage(sampleMessages()[16])
	if _, err := srv.ReadFrame(); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("after failure: %v, want the same ErrDecrypt", err)
	}
}

// An unknown message type and a message too long to encode are the caller's
// business: neither breaks the session.
func TestConnSurvivesUnknownAndUnencodable(t *testing.T) {
	auth, sk := testServer(t)
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	srv, cli, se, ce := handshake(t, a, b, sk, AuthorityPubKeyOf(auth))
	if se != nil || ce != nil {
		t.Fatal(se, ce)
	}
	if err := cli.WriteMessage(&SubmitSharesExtended{Extranonce: make([]byte, 40)}); !errors.Is(err, ErrTooLong) {
		t.Fatalf("40-byte extranonce: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		if err := cli.WriteFrame(Header{ExtensionType: 0x0001, MsgType: 0x42}, []byte{1, 2, 3}); err != nil {
			done <- err
			return
		}
		done <- cli.WriteMessage(sampleMessages()[16])
	}()
	_, f, err := srv.ReadMessage()
	if !errors.Is(err, ErrUnknownMessage) || f.Extension() != 1 || f.MsgType != 0x42 {
		t.Fatalf("unknown frame: %+v %v", f.Header, err)
	}
	m, _, err := srv.ReadMessage()
	if err != nil || !reflect.DeepEqual(m, sampleMessages()[16]) {
		t.Fatalf("next message: %+v %v", m, err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// The largest message the spec allows fits the default read limit, through
// the chunked transport (three Noise chunks).
func TestLargestJobFitsDefaultLimit(t *testing.T) {
	cSend, _, sRecv, _ := pairedStates(t)
	job := &NewExtendedMiningJob{ChannelID: 1, JobID: 2, MinNTime: ptr(3), MerklePath: make([]U256, 255),
		CoinbaseTxPrefix: bytes.Repeat([]byte{1}, 65535), CoinbaseTxSuffix: bytes.Repeat([]byte{2}, 65535)}
	w := sealed(t, cSend, job)
	f, err := readerConn(sRecv).readFrame(bytes.NewReader(w))
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeFrame(f)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, job) {
		t.Fatal("largest job changed in transit")
	}
}
