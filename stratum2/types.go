package stratum2

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// U256 is a 32-byte value kept in wire order (little-endian for targets,
// header byte order for hashes), so it crosses the package without copies
// into big.Int or reversals.
type U256 [32]byte

// Errors a decoder returns; callers can tell a short message from a bad value.
var (
	ErrShort      = errors.New("stratum2: message too short")
	ErrBadBool    = errors.New("stratum2: BOOL is neither 0 nor 1")
	ErrTooLong    = errors.New("stratum2: field longer than its type allows")
	ErrBadOption  = errors.New("stratum2: OPTION tag is neither 0 nor 1")
	ErrFrameLarge = errors.New("stratum2: frame payload larger than allowed")
)

// Limits of the length-prefixed types, from the spec's data-type table.
const (
	maxB032  = 32
	maxB064  = 64
	maxB0255 = 255
	maxB064K = 65535
	maxB016M = 1<<24 - 1
)

func appendU8(b []byte, v uint8) []byte   { return append(b, v) }
func appendU16(b []byte, v uint16) []byte { return binary.LittleEndian.AppendUint16(b, v) }
func appendU24(b []byte, v uint32) []byte { return append(b, byte(v), byte(v>>8), byte(v>>16)) }
func appendU32(b []byte, v uint32) []byte { return binary.LittleEndian.AppendUint32(b, v) }
func appendU64(b []byte, v uint64) []byte { return binary.LittleEndian.AppendUint64(b, v) }
func appendF32(b []byte, v float32) []byte {
	return binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
}
func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}
func appendU256(b []byte, v *U256) []byte { return append(b, v[:]...) }

// appendOptU32 writes OPTION[U32]: a one-byte presence tag then the value.
func appendOptU32(b []byte, v *uint32) []byte {
	if v == nil {
		return append(b, 0)
	}
	return appendU32(append(b, 1), *v)
}

// appendBytes writes a length-prefixed byte string; lenBytes is 1 (B0_32,
// B0_255, STR0_255), 2 (B0_64K) or 3 (B0_16M). Encoders check limits up front
// through checkLen so a message never goes out with a wrapped length.
func appendBytes(b []byte, lenBytes int, v []byte) []byte {
	switch lenBytes {
	case 1:
		b = append(b, byte(len(v)))
	case 2:
		b = appendU16(b, uint16(len(v)))
	default:
		b = appendU24(b, uint32(len(v)))
	}
	return append(b, v...)
}

func checkLen(field string, n, max int) error {
	if n > max {
		return fmt.Errorf("%w: %s is %d bytes, at most %d", ErrTooLong, field, n, max)
	}
	return nil
}

// reader walks a payload. The first failure sticks in err and every later
// read returns zero values, so decoders read all fields and check once.
// Byte-string reads return sub-slices of the payload: no allocation, and the
// caller must copy if it keeps them past the payload's buffer.
type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n > len(r.b) {
		r.err = ErrShort
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8() uint8 {
	v := r.take(1)
	if v == nil {
		return 0
	}
	return v[0]
}

func (r *reader) u16() uint16 {
	v := r.take(2)
	if v == nil {
		return 0
	}
	return binary.LittleEndian.Uint16(v)
}

func (r *reader) u24() uint32 {
	v := r.take(3)
	if v == nil {
		return 0
	}
	return uint32(v[0]) | uint32(v[1])<<8 | uint32(v[2])<<16
}

func (r *reader) u32() uint32 {
	v := r.take(4)
	if v == nil {
		return 0
	}
	return binary.LittleEndian.Uint32(v)
}

func (r *reader) u64() uint64 {
	v := r.take(8)
	if v == nil {
		return 0
	}
	return binary.LittleEndian.Uint64(v)
}

func (r *reader) f32() float32 { return math.Float32frombits(r.u32()) }

func (r *reader) boolean() bool {
	v := r.u8()
	if r.err == nil && v > 1 {
		r.err = ErrBadBool
	}
	return v == 1
}

func (r *reader) u256(dst *U256) {
	if v := r.take(32); v != nil {
		copy(dst[:], v)
	}
}

// optU32 reads OPTION[U32]; it returns a pointer into dst so a present value
// needs no allocation.
func (r *reader) optU32(dst *uint32) *uint32 {
	tag := r.u8()
	if r.err != nil {
		return nil
	}
	switch tag {
	case 0:
		return nil
	case 1:
		*dst = r.u32()
		if r.err != nil {
			return nil
		}
		return dst
	}
	r.err = ErrBadOption
	return nil
}

// bytes reads a length-prefixed string. The length is checked against the
// type's maximum and against what is left, so a forged length never causes an
// allocation or a read past the payload.
func (r *reader) bytes(lenBytes, max int) []byte {
	var n int
	switch lenBytes {
	case 1:
		n = int(r.u8())
	case 2:
		n = int(r.u16())
	default:
		n = int(r.u24())
	}
	if r.err != nil {
		return nil
	}
	if n > max {
		r.err = ErrTooLong
		return nil
	}
	v := r.take(n)
	if v == nil {
		return nil
	}
	return v
}

func (r *reader) str() string { return string(r.bytes(1, maxB0255)) }

// done reports the sticky error. Trailing bytes are not an error: later spec
// revisions append fields (OpenExtendedMiningChannel.Success gained one), and a
// peer on a newer revision must still be understood.
func (r *reader) done() error { return r.err }

// seqU256 reads SEQ0_255[U256]. The count is checked against the bytes left
// before the slice is made, so a forged count cannot allocate more than the
// payload holds.
func (r *reader) seqU256() []U256 {
	n := int(r.u8())
	if r.err != nil {
		return nil
	}
	if n*32 > len(r.b) {
		r.err = ErrShort
		return nil
	}
	if n == 0 {
		return nil
	}
	v := make([]U256, n)
	for i := range v {
		r.u256(&v[i])
	}
	return v
}

// seqU32 reads SEQ0_64K[U32], bounded like seqU256.
func (r *reader) seqU32() []uint32 {
	n := int(r.u16())
	if r.err != nil {
		return nil
	}
	if n*4 > len(r.b) {
		r.err = ErrShort
		return nil
	}
	if n == 0 {
		return nil
	}
	v := make([]uint32, n)
	for i := range v {
		v[i] = r.u32()
	}
	return v
}
