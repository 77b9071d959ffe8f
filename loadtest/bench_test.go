package loadtest

import (
	"bytes"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/hashforge/hashforge/pow"
	"github.com/hashforge/hashforge/stratum"
)

func benchJob(b *testing.B, difficulty float64) *job {
	b.Helper()
	v := realShareB(b)
	notify, err := stratum.ParseNotify(v.Notify)
	if err != nil {
		b.Fatal(err)
	}
	target, _ := pow.DifficultyToTarget(difficulty)
	j, err := parseJob(&notify, []byte{0, 0, 0, 0x28}, 8, target)
	if err != nil {
		b.Fatal(err)
	}
	return j
}

// BenchmarkShare is the generator's cost of one accept-mode share at the
// tests' pool difficulty: grinding plus the submit line.
func BenchmarkShare(b *testing.B) {
	j := benchJob(b, 1e-8)
	var g grinder
	g.setJob(j)
	user, _ := json.Marshal("bcrt1qe250ukcvtyhu5z9hpuahmqs75ndlh43vptpwmt.lt0")
	var line []byte
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		s, ok := g.find(true, 1<<20)
		if !ok {
			b.Fatal("no share in 2^20 hashes")
		}
		line = appendSubmit(line[:0], uint64(i), user, j, s)
	}
}

// BenchmarkReplies is the reader's cost per submit reply, accepted and
// refused.
func BenchmarkReplies(b *testing.B) {
	r := &run{cfg: Config{Window: 8, Mode: ModeAccept, User: "u", Miners: 1}, start: time.Now()}
	m := newMiner(r, 0)
	accept := []byte(`{"id":1234,"result":true,"error":null}`)
	stale := []byte(`{"id":1235,"result":null,"error":[21,"stale job",null]}`)
	b.ReportAllocs()
	for b.Loop() {
		m.handle(accept)
		m.handle(stale)
	}
}

// FuzzReplyFastPaths holds the hand parsers to encoding/json: whatever
// they take must decode to the same id, result and error, and no line
// may panic the miner's handler.
func FuzzReplyFastPaths(f *testing.F) {
	for _, s := range []string{
		`{"id":3,"result":true,"error":null}`,
		`{"id":5,"result":null,"error":[23,"low difficulty share",null]}`,
		`{"id":5,"result":null,"error":[-1,"",null]}`,
		`{"id":null,"method":"mining.notify","params":["a","b","c","d",[],"20000000","207fffff","6b06489e",true]}`,
		`{"id":null,"method":"mining.set_difficulty","params":[1e-8]}`,
		`{"id":null,"method":"mining.set_extranonce","params":["00",4]}`,
	} {
		f.Add([]byte(s))
	}
	r := &run{cfg: Config{Window: 8, Mode: ModeAccept, User: "u", Miners: 1}, start: time.Now()}
	f.Fuzz(func(t *testing.T, line []byte) {
		m := newMiner(r, 0)
		m.handle(line)
		var msg message
		if id, ok := parseAccept(line); ok {
			if err := json.Unmarshal(line, &msg); err != nil || string(msg.ID) != strconv.FormatUint(id, 10) ||
				string(msg.Result) != "true" || !isNull(msg.Error) {
				t.Fatalf("parseAccept took %q: json says %+v, %v", line, msg, err)
			}
		}
		if id, code, text, ok := parseReject(line); ok {
			var se stratum.Error
			if err := json.Unmarshal(line, &msg); err != nil || string(msg.ID) != strconv.FormatUint(id, 10) ||
				!isNull(msg.Result) || se.UnmarshalJSON(msg.Error) != nil ||
				strconv.Itoa(se.Code) != string(code) || !bytes.Equal([]byte(se.Message), text) {
				t.Fatalf("parseReject took %q as %d %s %q: json says %+v %+v, %v", line, id, code, text, msg, se, err)
			}
		}
	})
}
