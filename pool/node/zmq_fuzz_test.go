package node

import (
	"encoding/binary"
	"encoding/hex"
	"io"
	"log/slog"
	"testing"
)

// FuzzZMQParse: a ZMQ message's frames come from the node's publisher. A
// message is a block notice exactly when its topic is hashblock and its
// second frame 32 bytes, and then its hash is those bytes in hex; a
// 4-byte third frame is the sequence number kept, anything else leaves it.
func FuzzZMQParse(f *testing.F) {
	hash := make([]byte, 32)
	for i := range hash {
		hash[i] = byte(i)
	}
	f.Add([]byte(zmqTopicHashBlock), hash, []byte{1, 0, 0, 0}, uint8(3))
	f.Add([]byte(zmqTopicHashBlock), hash, []byte{}, uint8(2))
	f.Add([]byte("hashtx"), hash, []byte{1, 0, 0, 0}, uint8(3))
	f.Add([]byte(zmqTopicHashBlock), hash[:31], []byte{1, 0, 0}, uint8(3))
	f.Add([]byte(zmqTopicHashBlock), hash, []byte{0xff, 0xff, 0xff, 0xff}, uint8(1))
	z := &zmqSub{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	f.Fuzz(func(t *testing.T, topic, body, seq []byte, n uint8) {
		frames := [][]byte{topic, body, seq, seq}[:n%5]
		before, beforeKnown := z.seq, z.seqKnown
		got, ok := z.parse(frames)
		want := len(frames) >= 2 && string(topic) == zmqTopicHashBlock && len(body) == 32
		if ok != want {
			t.Fatalf("frames %q: notice %v, want %v", frames, ok, want)
		}
		if !ok {
			if got != "" || z.seq != before || z.seqKnown != beforeKnown {
				t.Fatalf("frames %q refused, but hash %q, sequence %d (%v)", frames, got, z.seq, z.seqKnown)
			}
			return
		}
		if got != hex.EncodeToString(body) {
			t.Fatalf("hash %q of frame %x", got, body)
		}
		if len(frames) >= 3 && len(seq) == 4 {
			if s := binary.LittleEndian.Uint32(seq); z.seq != s || !z.seqKnown {
				t.Fatalf("sequence %d (%v), frame says %d", z.seq, z.seqKnown, s)
			}
		} else if z.seq != before || z.seqKnown != beforeKnown {
			t.Fatalf("sequence moved to %d (%v) without a sequence frame", z.seq, z.seqKnown)
		}
	})
}
