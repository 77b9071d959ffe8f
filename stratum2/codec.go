package stratum2

import (
	"errors"
	"fmt"
	"io"
)

// HeaderLen is the plaintext frame header: extension_type U16, msg_type U8,
// msg_length U24.
const HeaderLen = 6

// ChannelMsgBit is bit 15 of extension_type: set when the message is addressed
// to a channel (its payload starts with channel_id). 0x8ABC and 0x0ABC name the
// same extension.
const ChannelMsgBit = 0x8000

// MaxPayload is the largest payload msg_length (U24) can describe.
const MaxPayload = 1<<24 - 1

// DefaultMaxPayload bounds what a reader accepts unless told otherwise: no
// Mining Protocol message comes near it (the largest, NewExtendedMiningJob,
// holds two B0_64K and 255 hashes), and a peer must not make us buffer 16 MiB.
const DefaultMaxPayload = 2*65535 + 255*32 + 64

// Header is a decoded frame header.
type Header struct {
	ExtensionType uint16 // with ChannelMsgBit as sent
	MsgType       uint8
	Length        uint32 // payload length, plaintext
}

// Extension returns the extension type without the channel bit.
func (h Header) Extension() uint16 { return h.ExtensionType &^ ChannelMsgBit }

// IsChannelMsg reports whether the channel_msg bit is set.
func (h Header) IsChannelMsg() bool { return h.ExtensionType&ChannelMsgBit != 0 }

// AppendHeader appends the 6-byte header.
func AppendHeader(b []byte, h Header) []byte {
	b = appendU16(b, h.ExtensionType)
	b = append(b, h.MsgType)
	return appendU24(b, h.Length)
}

// ParseHeader decodes a 6-byte header.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderLen {
		return Header{}, ErrShort
	}
	r := reader{b: b[:HeaderLen]}
	h := Header{ExtensionType: r.u16(), MsgType: r.u8(), Length: r.u24()}
	return h, nil
}

// Frame is one message: header fields and payload.
type Frame struct {
	Header
	Payload []byte
}

// AppendFrame appends header and payload of m (with the channel bit its type
// carries in the message-type table).
func AppendFrame(b []byte, m Message) ([]byte, error) {
	start := len(b)
	b = append(b, make([]byte, HeaderLen)...)
	b, err := m.Encode(b)
	if err != nil {
		return b[:start], err
	}
	n := len(b) - start - HeaderLen
	if n > MaxPayload {
		return b[:start], ErrFrameLarge
	}
	h := Header{ExtensionType: extensionFor(m.MsgType()), MsgType: m.MsgType(), Length: uint32(n)}
	AppendHeader(b[start:start], h)
	return b, nil
}

// FrameReader reads plaintext frames (the unencrypted transport the spec
// allows on a local network, and the inside of the Noise transport).
type FrameReader struct {
	R          io.Reader
	MaxPayload int // 0: DefaultMaxPayload
	buf        []byte
}

// ReadFrame reads one frame. The payload aliases an internal buffer that the
// next call overwrites. A length above MaxPayload is refused before any
// allocation.
func (fr *FrameReader) ReadFrame() (Frame, error) {
	var hb [HeaderLen]byte
	if _, err := io.ReadFull(fr.R, hb[:]); err != nil {
		return Frame{}, err
	}
	h, _ := ParseHeader(hb[:])
	max := fr.MaxPayload
	if max <= 0 {
		max = DefaultMaxPayload
	}
	if int(h.Length) > max {
		return Frame{}, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameLarge, h.Length, max)
	}
	if cap(fr.buf) < int(h.Length) {
		fr.buf = make([]byte, h.Length)
	}
	p := fr.buf[:h.Length]
	if _, err := io.ReadFull(fr.R, p); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, err
	}
	return Frame{Header: h, Payload: p}, nil
}
