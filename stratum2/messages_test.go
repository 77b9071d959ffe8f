package stratum2

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

func u256(b byte) U256 {
	var u U256
	for i := range u {
		u[i] = b + byte(i)
	}
	return u
}

func ptr(v uint32) *uint32 { return &v }

// sampleMessages holds one message of every type with every field non-zero,
// so a field dropped or swapped by an encoder shows up in the round trip.
func sampleMessages() []Message {
	return []Message{
		&SetupConnection{Protocol: ProtocolMining, MinVersion: 2, MaxVersion: 2, Flags: FlagRequiresVersionRolling, EndpointHost: "pool.example", EndpointPort: 3336, Vendor: "hashforge", HardwareVersion: "cpu", Firmware: "1.0", DeviceID: "rig-1"},
		&SetupConnectionSuccess{UsedVersion: 2, Flags: FlagRequiresFixedVersion},
		&SetupConnectionError{Flags: 6, ErrorCode: ErrCodeUnsupportedFeatureFlags},
		&ChannelEndpointChanged{ChannelID: 9},
		&Reconnect{NewHost: "other.example", NewPort: 3337},
		&OpenStandardMiningChannel{RequestID: 1, UserIdentity: "addr.worker", NominalHashRate: 1.5e12, MaxTarget: u256(1)},
		&OpenStandardMiningChannelSuccess{RequestID: 1, ChannelID: 2, Target: u256(2), ExtranoncePrefix: []byte{1, 2, 3, 4}, GroupChannelID: 7},
		&OpenMiningChannelError{RequestID: 1, ErrorCode: ErrCodeUnknownUser},
		&OpenExtendedMiningChannel{RequestID: 3, UserIdentity: "addr.w2", NominalHashRate: 3.25, MaxTarget: u256(3), MinExtranonceSize: 8},
		&OpenExtendedMiningChannelSuccess{RequestID: 3, ChannelID: 4, Target: u256(4), ExtranonceSize: 8, ExtranoncePrefix: []byte{9, 9, 9, 9}},
		&NewMiningJob{ChannelID: 2, JobID: 10, MinNTime: ptr(1700000000), Version: 0x20000000, MerkleRoot: u256(5)},
		&UpdateChannel{ChannelID: 2, NominalHashRate: 2e9, MaximumTarget: u256(6)},
		&UpdateChannelError{ChannelID: 2, ErrorCode: ErrCodeMaxTargetOutOfRange},
		&CloseChannel{ChannelID: 2, ReasonCode: "bye"},
		&SetExtranoncePrefix{ChannelID: 4, ExtranoncePrefix: []byte{7, 7}},
		&SubmitSharesStandard{ChannelID: 2, SequenceNumber: 11, JobID: 10, Nonce: 0xdeadbeef, NTime: 1700000001, Version: 0x20002000},
		&SubmitSharesExtended{ChannelID: 4, SequenceNumber: 12, JobID: 13, Nonce: 0xcafebabe, NTime: 1700000002, Version: 0x20004000, Extranonce: []byte{1, 2, 3, 4, 5, 6, 7, 8}},
		&SubmitSharesSuccess{ChannelID: 4, LastSequenceNumber: 12, NewSubmitsAcceptedCount: 3, NewSharesSum: 1 << 40},
		&SubmitSharesError{ChannelID: 4, SequenceNumber: 12, ErrorCode: ErrCodeStaleShare},
		&NewExtendedMiningJob{ChannelID: 4, JobID: 14, MinNTime: nil, Version: 0x20000000, VersionRollingAllowed: true, MerklePath: []U256{u256(7), u256(8)}, CoinbaseTxPrefix: []byte("prefix"), CoinbaseTxSuffix: []byte("suffix")},
		&SetNewPrevHash{ChannelID: 4, JobID: 14, PrevHash: u256(9), MinNTime: 1700000003, NBits: 0x1d00ffff},
		&SetTarget{ChannelID: 4, MaximumTarget: u256(10)},
		&SetGroupChannel{GroupChannelID: 7, ChannelIDs: []uint32{2, 5, 6}},
	}
}

func TestMessagesRoundTrip(t *testing.T) {
	seen := map[uint8]bool{}
	for _, m := range sampleMessages() {
		seen[m.MsgType()] = true
		b, err := m.Encode(nil)
		if err != nil {
			t.Fatalf("%T: %v", m, err)
		}
		back := NewMessage(m.MsgType())
		if reflect.TypeOf(back) != reflect.TypeOf(m) {
			t.Fatalf("NewMessage(0x%02x) = %T, want %T", m.MsgType(), back, m)
		}
		if err := back.Decode(b); err != nil {
			t.Fatalf("%T decode: %v", m, err)
		}
		if !reflect.DeepEqual(back, m) {
			t.Errorf("%T round trip:\n got %+v\nwant %+v", m, back, m)
		}
		// Every strict prefix is short: refused, never a panic.
		for i := 0; i < len(b); i++ {
			if err := NewMessage(m.MsgType()).Decode(b[:i]); err == nil {
				t.Errorf("%T: %d of %d bytes decoded without error", m, i, len(b))
			}
		}
	}
	if len(seen) != 23 {
		t.Errorf("%d message types covered, want 23", len(seen))
	}
}

// Known encodings, from the spec's type definitions and Bitcoin Core's sv2
// tests, so both directions cannot be wrong the same way.
func TestMessageKnownBytes(t *testing.T) {
	cases := []struct {
		m    Message
		want string
	}{
		{&SetupConnectionSuccess{UsedVersion: 2, Flags: 3}, "020003000000"},
		{&SetupConnectionError{ErrorCode: ErrCodeProtocolVersionMismatch}, "000000001970726f746f636f6c2d76657273696f6e2d6d69736d61746368"},
		{&SubmitSharesExtended{ChannelID: 1, SequenceNumber: 2, JobID: 3, Nonce: 4, NTime: 5, Version: 6, Extranonce: []byte{0xaa, 0xbb}},
			"01000000" + "02000000" + "03000000" + "04000000" + "05000000" + "06000000" + "02aabb"},
		{&NewMiningJob{ChannelID: 1, JobID: 2, MinNTime: nil, Version: 3, MerkleRoot: U256{}}, "01000000" + "02000000" + "00" + "03000000" + strings.Repeat("00", 32)},
		{&SetGroupChannel{GroupChannelID: 1, ChannelIDs: []uint32{2}}, "01000000" + "0100" + "02000000"},
		{&OpenStandardMiningChannel{RequestID: 1, UserIdentity: "u", NominalHashRate: 1.0, MaxTarget: U256{}}, "01000000" + "0175" + "0000803f" + strings.Repeat("00", 32)},
	}
	for _, c := range cases {
		b, err := c.m.Encode(nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(b); got != c.want {
			t.Errorf("%T = %s, want %s", c.m, got, c.want)
		}
	}
}

func TestDecodeRefusesBadValues(t *testing.T) {
	// B0_32 with length 33.
	p := append(unhex(t, "010000000200000003000000040000000500000006000000"), 33)
	p = append(p, make([]byte, 33)...)
	if err := new(SubmitSharesExtended).Decode(p); !errors.Is(err, ErrTooLong) {
		t.Errorf("extranonce of 33 bytes: %v, want ErrTooLong", err)
	}
	// BOOL that is 2.
	j := &NewExtendedMiningJob{ChannelID: 1}
	b, _ := j.Encode(nil)
	b[4+4+1+4] = 2
	if err := new(NewExtendedMiningJob).Decode(b); !errors.Is(err, ErrBadBool) {
		t.Errorf("bool 2: %v, want ErrBadBool", err)
	}
	// OPTION tag 5.
	n := &NewMiningJob{}
	b, _ = n.Encode(nil)
	b[8] = 5
	if err := new(NewMiningJob).Decode(b); !errors.Is(err, ErrBadOption) {
		t.Errorf("option tag 5: %v, want ErrBadOption", err)
	}
	// SEQ0_64K claiming 65535 entries in a 10-byte payload: refused before
	// allocating.
	if err := new(SetGroupChannel).Decode(unhex(t, "01000000ffff00000000")); !errors.Is(err, ErrShort) {
		t.Errorf("forged count: %v, want ErrShort", err)
	}
}

func TestEncodeRefusesOversized(t *testing.T) {
	if _, err := (&SubmitSharesExtended{Extranonce: make([]byte, 33)}).Encode(nil); !errors.Is(err, ErrTooLong) {
		t.Errorf("33-byte extranonce: %v", err)
	}
	if _, err := (&OpenStandardMiningChannel{UserIdentity: strings.Repeat("x", 256)}).Encode(nil); !errors.Is(err, ErrTooLong) {
		t.Errorf("256-byte identity: %v", err)
	}
	if _, err := (&NewExtendedMiningJob{MerklePath: make([]U256, 256)}).Encode(nil); !errors.Is(err, ErrTooLong) {
		t.Errorf("256 merkle hashes: %v", err)
	}
}

func TestFrameHeaderAndChannelBit(t *testing.T) {
	for _, m := range sampleMessages() {
		f, err := AppendFrame(nil, m)
		if err != nil {
			t.Fatal(err)
		}
		h, err := ParseHeader(f)
		if err != nil {
			t.Fatal(err)
		}
		if h.MsgType != m.MsgType() || int(h.Length) != len(f)-HeaderLen || h.Extension() != 0 {
			t.Errorf("%T: header %+v for %d-byte frame", m, h, len(f))
		}
		wantBit := map[uint8]bool{0x03: true, 0x15: true, 0x16: true, 0x17: true, 0x18: true, 0x19: true, 0x1a: true, 0x1b: true, 0x1c: true, 0x1d: true, 0x1f: true, 0x20: true, 0x21: true}[m.MsgType()]
		if h.IsChannelMsg() != wantBit {
			t.Errorf("%T: channel bit %v, want %v", m, h.IsChannelMsg(), wantBit)
		}
		fr := FrameReader{R: bytes.NewReader(f)}
		got, err := fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		dm, err := DecodeFrame(got)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(dm, m) {
			t.Errorf("%T: frame round trip %+v", m, dm)
		}
	}
	h, _ := ParseHeader(unhex(t, "00801b030201"))
	if h.ExtensionType != 0x8000 || !h.IsChannelMsg() || h.MsgType != 0x1b || h.Length != 0x010203 {
		t.Errorf("parsed %+v", h)
	}
}

func TestFrameReaderRefusals(t *testing.T) {
	// Length above the limit: refused from the header alone.
	big := AppendHeader(nil, Header{MsgType: 0x1b, Length: MaxPayload})
	fr := FrameReader{R: bytes.NewReader(big)}
	if _, err := fr.ReadFrame(); !errors.Is(err, ErrFrameLarge) {
		t.Errorf("16 MiB frame: %v, want ErrFrameLarge", err)
	}
	// Truncated payload.
	f, _ := AppendFrame(nil, sampleMessages()[16])
	fr = FrameReader{R: bytes.NewReader(f[:len(f)-1])}
	if _, err := fr.ReadFrame(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated frame: %v, want ErrUnexpectedEOF", err)
	}
	// Truncated header.
	fr = FrameReader{R: bytes.NewReader(f[:3])}
	if _, err := fr.ReadFrame(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated header: %v, want ErrUnexpectedEOF", err)
	}
	// Unknown type and unknown extension.
	if _, err := DecodeFrame(Frame{Header: Header{MsgType: 0x1e}}); !errors.Is(err, ErrUnknownMessage) {
		t.Errorf("type 0x1e: %v", err)
	}
	if _, err := DecodeFrame(Frame{Header: Header{ExtensionType: 0x8001, MsgType: 0x1b}}); !errors.Is(err, ErrUnknownMessage) {
		t.Errorf("extension 1: %v", err)
	}
}
