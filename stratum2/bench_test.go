package stratum2

import (
	"bytes"
	"testing"
	"time"
)

// BenchmarkHandshake is one full handshake in memory, both sides: the
// initiator's ephemeral key, the responder's ephemeral key and reply, the
// initiator's checks including the certificate signature.
func BenchmarkHandshake(b *testing.B) {
	auth, sk := testServer(b)
	authPub := AuthorityPubKeyOf(auth)
	now := time.Now()
	for b.Loop() {
		ini, m1, err := newInitiator()
		if err != nil {
			b.Fatal(err)
		}
		resp := &responderHandshake{s: sk.priv, sEll: sk.ell, cert: sk.cert}
		if err := resp.readMsg1(m1); err != nil {
			b.Fatal(err)
		}
		e, eEll, err := newEphemeral()
		if err != nil {
			b.Fatal(err)
		}
		m2, _, _, err := resp.writeMsg2(e, eEll)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, _, err := ini.readMsg2(m2, authPub, now); err != nil {
			b.Fatal(err)
		}
	}
}

func benchShare() *SubmitSharesExtended {
	return &SubmitSharesExtended{ChannelID: 4, SequenceNumber: 12, JobID: 13, Nonce: 0xcafebabe, NTime: 1700000002, Version: 0x20004000, Extranonce: []byte{1, 2, 3, 4, 5, 6, 7, 8}}
}

// BenchmarkTransportSubmitSharesExtended seals a SubmitSharesExtended frame
// as a miner does and opens it as the pool does.
func BenchmarkTransportSubmitSharesExtended(b *testing.B) {
	cSend, _, sRecv, _ := pairedStates(b)
	rc := &Conn{recv: sRecv}
	share := benchShare()
	payload, _ := share.Encode(nil)
	h := Header{ExtensionType: ChannelMsgBit, MsgType: MsgSubmitSharesExtended}
	var wire []byte
	var rd bytes.Reader
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		var err error
		wire, err = sealFrame(cSend, wire[:0], h, payload)
		if err != nil {
			b.Fatal(err)
		}
		rd.Reset(wire)
		if _, err := rc.readFrame(&rd); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeSubmitSharesExtended(b *testing.B) {
	payload, _ := benchShare().Encode(nil)
	var m SubmitSharesExtended
	b.ReportAllocs()
	for b.Loop() {
		if err := m.Decode(payload); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeSubmitSharesExtended(b *testing.B) {
	m := benchShare()
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = m.Encode(buf[:0])
	}
}

// The pool's hot path must not allocate per share.
func TestDecodeSubmitSharesExtendedAllocs(t *testing.T) {
	payload, _ := benchShare().Encode(nil)
	var m SubmitSharesExtended
	if n := testing.AllocsPerRun(100, func() { m.Decode(payload) }); n != 0 {
		t.Errorf("Decode allocates %v times per share, want 0", n)
	}
}
