package stratum

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

// realLines are request lines as real miners send them, seeding the fuzzers.
var realLines = []string{
	`{"id": 1, "method": "mining.subscribe", "params": ["cpuminer/2.5.1"]}`,
	`{"id": 2, "method": "mining.authorize", "params": ["bcrt1qe250ukcvtyhu5z9hpuahmqs75ndlh43vptpwmt.minerd-px", "x"]}`,
	`{"id": 4, "method": "mining.submit", "params": ["bcrt1qe250ukcvtyhu5z9hpuahmqs75ndlh43vptpwmt.minerd-px", "o-1", "00000000", "6b06489e", "8b2c0300"]}`,
	`{"id":1,"method":"mining.configure","params":[["version-rolling","minimum-difficulty"],{"version-rolling.mask":"1fffe000","version-rolling.min-bit-count":2,"minimum-difficulty.value":2048}]}`,
	`{"id":3,"method":"mining.extranonce.subscribe","params":[]}`,
	`{"id":"5","method":"mining.suggest_difficulty","params":[0.5]}`,
	`{"id":null,"method":"mining.submit","params":["x.w","o-1","0a0b0c0d","6b0648a0","00000001","1fffe000"]}`,
	`{"id":9,"result":"cgminer/4.10","error":null}`,
}

func FuzzLineReader(f *testing.F) {
	f.Add([]byte(realLines[0]+"\n"+realLines[2]+"\r\n\n"), 64)
	f.Add([]byte("a\r\n\r\n\r\rb"), 1)
	f.Add(bytes.Repeat([]byte{'x'}, 100), 8)
	f.Add([]byte("\n\n\n"), 0)
	f.Fuzz(func(t *testing.T, data []byte, max int) {
		max = max%300 + 1
		if max <= 0 {
			max += 300
		}
		// Feed in small uneven pieces to exercise refills and compaction.
		lr := NewLineReader(&chunked{data: data, sizes: []int{1, 7, 3, 64}}, max)
		var total int
		for {
			line, err := lr.ReadLine()
			if err != nil {
				if err != io.EOF && !errors.Is(err, ErrLineTooLong) {
					t.Fatalf("unexpected error %v", err)
				}
				break
			}
			if len(line) == 0 || len(line) > max {
				t.Fatalf("line of %d bytes, max %d", len(line), max)
			}
			// Only one '\r' belongs to the terminator; "x\r\r\n" is the line "x\r".
			if bytes.IndexByte(line, '\n') >= 0 {
				t.Fatalf("newline inside line %q", line)
			}
			total += len(line)
			if total > len(data) {
				t.Fatal("returned more bytes than were read")
			}
		}
		if cap(lr.buf) > max+2 && cap(lr.buf) > initialLineBuffer {
			t.Fatalf("buffer %d bytes for max %d", cap(lr.buf), max)
		}
	})
}

type chunked struct {
	data  []byte
	sizes []int
	i     int
}

func (c *chunked) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(c.data), c.sizes[c.i%len(c.sizes)])
	c.i++
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

func FuzzParseSubmit(f *testing.F) {
	for _, v := range loadVectors(f) {
		if v.Submit != nil {
			f.Add([]byte(v.Submit))
		}
	}
	f.Add([]byte(`["w","j","00","6b06489e","8b2c0300","1fffe000"]`))
	f.Add([]byte(`["w","j","0","6b06489","8b2c0300"]`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, params []byte) {
		// The fast path must agree with encoding/json whenever it answers.
		if fast, ok := splitPlainStrings(params, nil); ok {
			var want []string
			if err := json.Unmarshal(params, &want); err != nil {
				t.Fatalf("fast path accepted invalid JSON %q as %q", params, fast)
			}
			if strings.Join(fast, "\x00") != strings.Join(want, "\x00") || len(fast) != len(want) {
				t.Fatalf("fast path %q, encoding/json %q", fast, want)
			}
		}
		p, err := ParseSubmit(params)
		slow, slowErr := parseSubmitSlow(params)
		if (err == nil) != (slowErr == nil) || (err == nil && !reflect.DeepEqual(p, slow)) {
			t.Fatalf("fast %+v, %v; slow %+v, %v", p, err, slow, slowErr)
		}
		if err != nil {
			var serr *Error
			if !errors.As(err, &serr) || serr.Code != CodeOther {
				t.Fatalf("error %v is not a *Error with code 20", err)
			}
			return
		}
		// Whatever was accepted must re-encode to something that parses to
		// the same values.
		enc := []string{p.User, p.JobID, hexString(p.Extranonce2), hex32(p.NTime), hex32(p.Nonce)}
		if p.HasVersionBits {
			enc = append(enc, hex32(p.VersionBits))
		}
		b, _ := json.Marshal(enc)
		q, err := ParseSubmit(b)
		if err != nil {
			t.Fatalf("re-encoded %s rejected: %v", b, err)
		}
		if q.User != p.User || q.JobID != p.JobID || !bytes.Equal(q.Extranonce2, p.Extranonce2) ||
			q.NTime != p.NTime || q.Nonce != p.Nonce || q.VersionBits != p.VersionBits || q.HasVersionBits != p.HasVersionBits {
			t.Fatalf("round trip %+v != %+v", q, p)
		}
	})
}

func FuzzParseConfigure(f *testing.F) {
	f.Add([]byte(`[["version-rolling","minimum-difficulty"],{"version-rolling.mask":"1fffe000","version-rolling.min-bit-count":2,"minimum-difficulty.value":2048}]`))
	f.Add([]byte(`[["version-rolling"],{"version-rolling.mask":"ffffffff"}]`))
	f.Add([]byte(`[["subscribe-extranonce","info"],{"info.connection-url":"x"}]`))
	f.Add([]byte(`[[]]`))
	f.Fuzz(func(t *testing.T, params []byte) {
		p, err := ParseConfigure(params)
		if err != nil {
			var serr *Error
			if !errors.As(err, &serr) || serr.Code != CodeOther {
				t.Fatalf("error %v is not a *Error with code 20", err)
			}
			return
		}
		if p.HasMinimumDifficulty && !(p.MinimumDifficulty > 0) {
			t.Fatalf("accepted minimum difficulty %v", p.MinimumDifficulty)
		}
		if p.VersionRollingMinBitCount < 0 || p.VersionRollingMinBitCount > 32 {
			t.Fatalf("accepted min-bit-count %d", p.VersionRollingMinBitCount)
		}
		if p.Raw == nil {
			t.Fatal("Raw must never be nil on success")
		}
	})
}

func FuzzRequest(f *testing.F) {
	for _, l := range realLines {
		f.Add([]byte(l))
	}
	f.Add([]byte(`{"id":{},"method":1}`))
	f.Add([]byte(`[{"id":1}]`))
	f.Fuzz(func(t *testing.T, line []byte) {
		req, err := DecodeRequest(line)
		if req == nil {
			t.Fatal("DecodeRequest returned a nil Request")
		}
		// Whatever came in, the reply we would send is valid JSON.
		var out []byte
		if err != nil {
			var serr *Error
			if !errors.As(err, &serr) || serr.Code != CodeOther {
				t.Fatalf("error %v is not a *Error with code 20", err)
			}
			out, _ = (&Response{ID: req.ID, Error: serr}).appendJSON(nil)
		} else {
			if req.Method == "" {
				t.Fatal("accepted an empty method")
			}
			out, _ = (&Response{ID: req.ID, Result: true}).appendJSON(nil)
			// Typed parsers must cope with any params that got this far.
			ParseSubmit(req.Params)
			ParseSubscribe(req.Params)
			ParseAuthorize(req.Params)
			ParseConfigure(req.Params)
			ParseSuggestDifficulty(req.Params)
			ParseNotify(req.Params)
			ParseSubscribeResult(req.Params)
		}
		if !json.Valid(out) {
			t.Fatalf("reply %q is not valid JSON", out)
		}
		if len(req.ID) > 0 && !bytes.Contains(out, req.ID) {
			t.Fatalf("reply %s does not echo id %s", out, req.ID)
		}
	})
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

func hex32(v uint32) string {
	return hexString([]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
