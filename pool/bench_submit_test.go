package pool

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/hashforge/hashforge/stratum"
)

// BenchmarkSubmitDecodeAndCheck is the CPU of one accepted share short of
// the reply and the ledger: a real mining.submit line decoded as the
// session decodes it, its params parsed as handleSubmit parses them, then
// CheckShare. Every nonce is distinct, so every share is accepted. The
// duplicate record starts over every jobShares shares, as it does with
// each new job: grown to b.N entries it would measure cache misses in a map
// far larger than a job's.
func BenchmarkSubmitDecodeAndCheck(b *testing.B) {
	for _, s := range branchSizes {
		b.Run(s.name, func(b *testing.B) { benchSubmitDecodeAndCheck(b, s.txs) })
	}
}

func benchSubmitDecodeAndCheck(b *testing.B, txs int) {
	book, j := benchBook(b, txs)
	var diffs DifficultyLog
	diffs.Set(1e-30, mustTarget(b, 1e-30))
	diffs.JobSent(j.Seq)
	line := []byte(fmt.Sprintf(`{"id": 4, "method": "mining.submit", "params": ["%s.rig1", "%s", "0000000000000000", "%08x", "00000000", "00ffe000"]}`,
		regtestAddr, j.ID, j.curTime))
	at := bytes.Index(line, []byte(`"00000000", "00ffe000"`)) + 1
	en1 := [4]byte{1, 2, 3, 4}
	dec := newSubmitDecoder()
	b.ReportAllocs()
	defer reportCPU(b)()
	var nonce uint32
	for b.Loop() {
		nonce++
		if nonce%jobShares == 0 {
			for i := range j.dups {
				j.dups[i].seen = nil
			}
		}
		putHex32(line[at:], nonce)
		p, err := dec(line)
		if err != nil {
			b.Fatal(err)
		}
		sub := Submission{JobID: p.JobID, Extranonce1: en1[:], Extranonce2: p.Extranonce2,
			NTime: p.NTime, Nonce: p.Nonce, VersionBits: p.VersionBits, HasVersionBits: p.HasVersionBits,
			VersionMask: DefaultVersionMask}
		if _, err := book.CheckShare(&sub, &diffs); err != nil {
			b.Fatal(err)
		}
	}
}

// jobShares is a busy job's share count: 1,000 miners at a share every
// 2 s for 30 s.
const jobShares = 16384

// newSubmitDecoder decodes a line as a session does.
func newSubmitDecoder() func([]byte) (stratum.SubmitParams, error) {
	var d stratum.Decoder
	return func(line []byte) (stratum.SubmitParams, error) {
		req, err := d.Decode(line)
		if err != nil {
			return stratum.SubmitParams{}, err
		}
		return req.Submit()
	}
}

func putHex32(dst []byte, v uint32) {
	const digits = "0123456789abcdef"
	for i := 7; i >= 0; i-- {
		dst[i] = digits[v&15]
		v >>= 4
	}
}
