package worker

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/hashforge/hashforge/stratum2"
)

// FuzzV2PoolMessages feeds a V2 session any sequence of decodable pool
// messages (a type byte, a 2-byte length, the payload). Nothing a pool
// sends may panic the session or leave it with work the miner cannot use.
func FuzzV2PoolMessages(f *testing.F) {
	enc := func(ms ...stratum2.Message) []byte {
		var out []byte
		for _, m := range ms {
			p, err := m.Encode(nil)
			if err != nil {
				f.Fatal(err)
			}
			out = append(out, m.MsgType())
			out = binary.LittleEndian.AppendUint16(out, uint16(len(p)))
			out = append(out, p...)
		}
		return out
	}
	nt := uint32(0x66000010)
	job := func(id uint32, minNTime *uint32) *stratum2.NewExtendedMiningJob {
		return &stratum2.NewExtendedMiningJob{ChannelID: 7, JobID: id, MinNTime: minNTime, Version: 0x20000000,
			VersionRollingAllowed: true, MerklePath: []stratum2.U256{{1}}, CoinbaseTxPrefix: mustDecode(testCoinb1),
			CoinbaseTxSuffix: mustDecode(testCoinb2)}
	}
	f.Add(enc(job(1, nil), &stratum2.SetNewPrevHash{ChannelID: 7, JobID: 1, MinNTime: 5, NBits: 0x207fffff},
		job(2, &nt), &stratum2.SetTarget{ChannelID: 7, MaximumTarget: stratum2.U256{0xff, 0xff}},
		&stratum2.SetExtranoncePrefix{ChannelID: 7, ExtranoncePrefix: []byte{1, 2}},
		&stratum2.SubmitSharesSuccess{ChannelID: 7, LastSequenceNumber: 3},
		&stratum2.SubmitSharesError{ChannelID: 7, SequenceNumber: 4, ErrorCode: "stale-share"}))
	f.Add(enc(&stratum2.SetNewPrevHash{ChannelID: 7, JobID: 9}, job(3, &nt), &stratum2.Reconnect{NewHost: "x", NewPort: 1},
		&stratum2.CloseChannel{ChannelID: 7, ReasonCode: "bye"}))
	f.Add(enc(&stratum2.SetExtranoncePrefix{ChannelID: 7, ExtranoncePrefix: make([]byte, 32)}, &stratum2.SetTarget{ChannelID: 7}))
	// Standard channel (an odd length, see below): header-only jobs, its
	// group channel's too.
	std := enc(&stratum2.NewMiningJob{ChannelID: 7, JobID: 1, Version: 0x20000000, MerkleRoot: stratum2.U256{1, 2}},
		&stratum2.SetNewPrevHash{ChannelID: 7, JobID: 1, MinNTime: 5, NBits: 0x207fffff},
		&stratum2.NewMiningJob{ChannelID: 6, JobID: 2, MinNTime: &nt, Version: 0x20000000, MerkleRoot: stratum2.U256{3}})
	if len(std)%2 == 0 {
		std = append(std, 0)
	}
	f.Add(std)
	f.Fuzz(func(t *testing.T, data []byte) {
		m := fuzzMiner(t)
		s, v, done := liveV2Session(m)
		defer done()
		// The input's length picks the channel: odd, a standard one in
		// group 6, with no extranonce to roll.
		if len(data)%2 == 1 {
			v.standard, v.group = true, 6
			s.mu.Lock()
			s.en2Size = 0
			s.mu.Unlock()
		}
		data = bytes.Clone(data) // payloads are scribbled on below
		for len(data) >= 3 {
			typ, n := data[0], int(binary.LittleEndian.Uint16(data[1:]))
			data = data[3:]
			n = min(n, len(data))
			payload := data[:n]
			data = data[n:]
			msg := stratum2.NewMessage(typ)
			if msg == nil || msg.Decode(payload) != nil {
				continue
			}
			if err := v.handle(msg); err != nil {
				if err != errV2Reconnect && !strings.HasPrefix(err.Error(), "pool closed the channel") {
					t.Fatalf("handle %T: %v", msg, err)
				}
				break
			}
			// Aliased bytes must not leak into kept state.
			for i := range payload {
				payload[i] ^= 0xff
			}
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if len(s.en1)+s.en2Size > 32 || len(v.futures) > maxV2FutureJobs || len(v.futures) != len(v.futureOrder) {
			t.Fatalf("extranonce %d+%d, %d future jobs (%d in order)", len(s.en1), s.en2Size, len(v.futures), len(v.futureOrder))
		}
		if s.current != nil {
			j := s.current.job
			if len(j.Branch) > 32 || j.PrevHash != v.prev || j.NBits != v.nbits || (j.Root != nil) != v.standard {
				t.Fatalf("current job %+v does not match the previous block %x/%08x", j, v.prev, v.nbits)
			}
			_ = j.Header(s.en1, make([]byte, s.en2Size), j.Version, j.NTime, 0)
		}
	})
}

// liveV2Session is liveSession with a V2 connection state on channel 7
// whose messages are handed to v.handle directly.
func liveV2Session(m *Miner) (*session, *v2conn, func()) {
	s, done := liveSession(m)
	u, _ := stratum2.ParseURL("stratum2+tcp://pool.example:34254/9bXiEd8boQVhq7WddEcERUL5tyyJVFYdU8th3HfbNXK3Yw6GRXh")
	v := &v2conn{m: m, s: s, log: m.log, url: u, channel: 7, done: make(chan struct{}),
		pending: map[uint32]chan v2ack{}, futures: map[uint32]v2Future{}}
	s.v2 = v
	return s, v, done
}
