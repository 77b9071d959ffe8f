package ledger

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"time"
)

// batchID is a UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then
// randomness. Random enough that ids from many pool nodes never collide,
// time-ordered so spool_batches' primary key index is appended to at its
// right edge instead of being written all over.
type batchID [16]byte

func newBatchID(now time.Time) batchID {
	var id batchID
	ms := uint64(now.UnixMilli())
	var ts [8]byte
	binary.BigEndian.PutUint64(ts[:], ms)
	copy(id[:6], ts[2:])
	_, _ = rand.Read(id[6:])  // crypto/rand.Read never returns an error
	id[6] = 0x70 | id[6]&0x0f // version 7
	id[8] = 0x80 | id[8]&0x3f // RFC 9562 variant
	return id
}

func (id batchID) String() string {
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
