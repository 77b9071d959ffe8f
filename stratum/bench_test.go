package stratum

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
)

func BenchmarkParseSubmit(b *testing.B) {
	params := loadVectors(b)["real-miner-share-regtest"].Submit
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseSubmit(params); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeRequest(b *testing.B) {
	line := []byte(realLines[2])
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeRequest(line); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeNotification(b *testing.B) {
	var n NotifyParams
	if err := json.Unmarshal(loadVectors(b)["computed-branch-of-3"].Notify, &n); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EncodeNotification("mining.notify", n); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReply(b *testing.B) {
	s := benchSessions(1, 1)[0]
	id := json.RawMessage(`4`)
	b.ReportAllocs()
	for b.Loop() {
		s.Reply(id, true)
		s.queue = s.queue[:0]
	}
}

func BenchmarkLineReader(b *testing.B) {
	in := strings.Repeat(realLines[2]+"\n", 1000)
	r := strings.NewReader(in)
	lr := NewLineReader(r, DefaultMaxLine)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(in)
		lr.r, lr.err, lr.start, lr.end = r, nil, 0, 0
		for {
			if _, err := lr.ReadLine(); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
	}
}

// benchSessions builds live sessions without connections: enough for the
// send path, which only touches the queue. They look busy reading, so no
// writer starts and the benchmark drains the queues itself.
func benchSessions(n, queue int) []*Session {
	cfg := &serverConfig{queue: queue, log: slog.New(slog.DiscardHandler)}
	out := make([]*Session, n)
	for i := range out {
		out[i] = newSession(context.Background(), uint64(i+1), nil, cfg)
		out[i].inBatch = true
	}
	return out
}

// BenchmarkFanOut is one job broadcast: an encoded mining.notify queued on
// 10,000 sessions. The per-iteration drain stands in for the writers.
func BenchmarkFanOut(b *testing.B) {
	var n NotifyParams
	if err := json.Unmarshal(loadVectors(b)["computed-branch-of-3"].Notify, &n); err != nil {
		b.Fatal(err)
	}
	line, err := EncodeNotification("mining.notify", n)
	if err != nil {
		b.Fatal(err)
	}
	sessions := benchSessions(10_000, 4)
	b.ReportAllocs()
	for b.Loop() {
		for _, s := range sessions {
			if !s.SendLine(line) {
				b.Fatal("session dropped")
			}
		}
		b.StopTimer()
		for _, s := range sessions {
			clear(s.queue)
			s.queue = s.queue[:0]
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(sessions)), "ns/session")
}

// BenchmarkDecoderSubmit is what the session does with a submit line:
// decode it and parse its params.
func BenchmarkDecoderSubmit(b *testing.B) {
	line := []byte(realLines[2])
	var d Decoder
	b.ReportAllocs()
	for b.Loop() {
		req, err := d.Decode(line)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := req.Submit(); err != nil {
			b.Fatal(err)
		}
	}
}
