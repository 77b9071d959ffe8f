package stratum2

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func FuzzParseHeader(f *testing.F) {
	f.Add([]byte{0x00, 0x80, 0x1b, 0x03, 0x02, 0x01})
	f.Add([]byte{0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		if err != nil {
			if len(b) >= HeaderLen {
				t.Fatalf("%d bytes refused: %v", len(b), err)
			}
			return
		}
		if got := AppendHeader(nil, h); !bytes.Equal(got, b[:HeaderLen]) {
			t.Fatalf("re-encoded %x, was %x", got, b[:HeaderLen])
		}
	})
}

// FuzzDecodeMessage drives every message decoder (the first byte picks the
// type). What decodes must re-encode to bytes that decode to the same
// encoding again.
func FuzzDecodeMessage(f *testing.F) {
	for _, m := range sampleMessages() {
		p, _ := m.Encode(nil)
		f.Add(append([]byte{m.MsgType()}, p...))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 {
			return
		}
		m := NewMessage(b[0])
		if m == nil {
			return
		}
		if err := m.Decode(b[1:]); err != nil {
			return
		}
		enc, err := m.Encode(nil)
		if err != nil {
			t.Fatalf("%T decoded but does not encode: %v", m, err)
		}
		m2 := NewMessage(b[0])
		if err := m2.Decode(enc); err != nil {
			t.Fatalf("%T re-decode: %v", m, err)
		}
		enc2, _ := m2.Encode(nil)
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("%T: %x then %x", m, enc, enc2)
		}
		if len(enc) > len(b)-1 {
			t.Fatalf("%T: re-encoding %d bytes longer than the %d-byte input", m, len(enc), len(b)-1)
		}
	})
}

func FuzzFrameReader(f *testing.F) {
	for _, m := range sampleMessages()[14:18] {
		fr, _ := AppendFrame(nil, m)
		f.Add(fr)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr := FrameReader{R: bytes.NewReader(b)}
		for {
			fm, err := fr.ReadFrame()
			if err != nil {
				return
			}
			if int(fm.Length) != len(fm.Payload) {
				t.Fatalf("length %d, payload %d", fm.Length, len(fm.Payload))
			}
			DecodeFrame(fm)
		}
	})
}

// FuzzTransportRead feeds bytes to a Conn's reader. One handshake is made up
// front and its receive state copied per exec: a handshake per exec would be
// too slow to explore anything.
func FuzzTransportRead(f *testing.F) {
	cSend, _, sRecv, _ := pairedStates(f)
	send, recv0 := *cSend, *sRecv
	for _, m := range sampleMessages()[15:18] {
		p, _ := m.Encode(nil)
		s := send // each seed is the first frame of the session
		w, _ := sealFrame(&s, nil, Header{ExtensionType: ChannelMsgBit, MsgType: m.MsgType()}, p)
		f.Add(w)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		recv := recv0
		c := &Conn{recv: &recv}
		fm, err := c.readFrame(bytes.NewReader(b))
		if err != nil {
			if recv.n > 1+uint64(len(b)/maxCTChunk) {
				t.Fatalf("nonce advanced to %d on a failed read", recv.n)
			}
			return
		}
		if int(fm.Length) != len(fm.Payload) {
			t.Fatalf("length %d, payload %d", fm.Length, len(fm.Payload))
		}
	})
}

// The responder's view of the first handshake message: any 64 bytes are an
// ElligatorSwift encoding, so any input of that length must complete.
func FuzzHandshakeMsg1(f *testing.F) {
	f.Add(make([]byte, 64))
	f.Add(bytes.Repeat([]byte{0xff}, 64))
	f.Fuzz(func(t *testing.T, b []byte) {
		hs := &responderHandshake{}
		if err := hs.readMsg1(b); err != nil {
			if len(b) == HandshakeMsg1Len {
				t.Fatalf("64 bytes refused: %v", err)
			}
			return
		}
		if len(b) != HandshakeMsg1Len {
			t.Fatalf("%d bytes accepted", len(b))
		}
	})
}

// The initiator's view of the reply. The seed is a valid reply; mutations of
// it must be refused (and an unmodified one accepted).
func FuzzHandshakeMsg2(f *testing.F) {
	auth, sk := testServer(f)
	ie := testKey("fuzz initiator")
	ieEll := mustEll(f, ie)
	ini0, m1, _ := newInitiatorWith(ie, ieEll)
	resp := &responderHandshake{s: sk.priv, sEll: sk.ell, cert: sk.cert}
	resp.readMsg1(m1)
	valid, _, _, _ := resp.writeMsg2(testKey("fuzz responder"), mustEll(f, testKey("fuzz responder")))
	f.Add(valid)
	f.Add(valid[:100])
	now := time.Now()
	authPub := AuthorityPubKeyOf(auth)
	f.Fuzz(func(t *testing.T, b []byte) {
		ss := *ini0.ss
		ini := &initiatorHandshake{ss: &ss, e: ie, eEll: ieEll}
		_, _, _, err := ini.readMsg2(b, authPub, now)
		if bytes.Equal(b, valid) {
			if err != nil {
				t.Fatalf("valid reply refused: %v", err)
			}
			return
		}
		if err == nil {
			t.Fatalf("modified reply accepted: %x", b)
		}
		if !errors.Is(err, ErrHandshake) {
			t.Fatalf("error %v does not wrap ErrHandshake", err)
		}
	})
}

func FuzzSignatureNoiseMessage(f *testing.F) {
	f.Add(make([]byte, SignatureNoiseMessageLen))
	f.Fuzz(func(t *testing.T, b []byte) {
		var m SignatureNoiseMessage
		if err := m.Decode(b); err != nil {
			return
		}
		if !bytes.Equal(m.Encode(nil), b) {
			t.Fatal("re-encoding differs")
		}
	})
}

func FuzzParseURL(f *testing.F) {
	f.Add("stratum2+tcp://thepool.com:34254/9bXiEd8boQVhq7WddEcERUL5tyyJVFYdU8th3HfbNXK3Yw6GRXh")
	f.Add("stratum2+tcp://[::1]:1/9bXiEd8boQVhq7WddEcERUL5tyyJVFYdU8th3HfbNXK3Yw6GRXh")
	f.Add("9bXiEd8boQVhq7WddEcERUL5tyyJVFYdU8th3HfbNXK3Yw6GRXh")
	f.Fuzz(func(t *testing.T, s string) {
		if k, err := ParseAuthorityPubKey(s); err == nil {
			if k2, err := ParseAuthorityPubKey(k.String()); err != nil || k2 != k {
				t.Fatalf("key %q does not survive String/Parse: %v", s, err)
			}
		}
		u, err := ParseURL(s)
		if err != nil {
			return
		}
		u2, err := ParseURL(u.String())
		if err != nil || u2 != u {
			t.Fatalf("URL %q: String() = %q does not parse back: %v", s, u.String(), err)
		}
	})
}
