// Package uuidv7 makes UUIDv7 ids (RFC 9562): 48 bits of Unix milliseconds,
// then randomness. Random enough that ids from many pool nodes never
// collide, time-ordered so a primary key index on them is appended to at
// its right edge instead of being written all over. The ledger's share
// batches and the payout's payment batches both use them.
package uuidv7

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"
)

// UUID is a UUIDv7.
type UUID [16]byte

// New returns a UUIDv7 stamped with now.
func New(now time.Time) UUID {
	var id UUID
	var ts [8]byte
	binary.BigEndian.PutUint64(ts[:], uint64(now.UnixMilli()))
	copy(id[:6], ts[2:])
	_, _ = rand.Read(id[6:])  // crypto/rand.Read never returns an error
	id[6] = 0x70 | id[6]&0x0f // version 7
	id[8] = 0x80 | id[8]&0x3f // RFC 9562 variant
	return id
}

// String is the canonical 8-4-4-4-12 hex form.
func (id UUID) String() string {
	var b [36]byte
	hex.Encode(b[0:8], id[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], id[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], id[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], id[8:10])
	b[23] = '-'
	hex.Encode(b[24:], id[10:])
	return string(b[:])
}

// Parse reads the canonical form String writes.
func Parse(s string) (UUID, error) {
	var id UUID
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return id, fmt.Errorf("malformed UUID %q", s)
	}
	digits := s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:]
	if _, err := hex.Decode(id[:], []byte(digits)); err != nil {
		return id, fmt.Errorf("malformed UUID %q", s)
	}
	return id, nil
}
