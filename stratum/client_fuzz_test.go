package stratum

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
)

// poolLines are server→client lines as real pools send them, seeding the
// client-side fuzzers.
var poolLines = []string{
	`{"id":1,"result":[[["mining.set_difficulty","b4b6693b72a50c7116db18d6497cac52"],["mining.notify","ae6812eb4cd7735a302a8a9dd95cf71f"]],"08000002",4],"error":null}`,
	`{"id":2,"result":true,"error":null}`,
	`{"id":null,"method":"mining.set_difficulty","params":[4096]}`,
	`{"id":null,"method":"mining.notify","params":["45483b","0f905d563ac60486afeb835cf8c40d46acdaaf1600032b910000000000000000","02000000010000000000000000000000000000000000000000000000000000000000000000ffffffff170358eb0c5075626c69632d506f6f6c","ffffffff029a9ab215000000001600144e28940485d09e0d7d6cb94a1c7259c176e1710c0000000000000000266a24aa21a9ed330c4457d7cc5a089843273490f191dfbbf3cd9ffcc5553030380d92c741fabb00000000",["2fdd3998d4a54d7687fcd5e30b510329c161c4ddd7939d00a3ba2b05ccbe8aed"],"20000000","170355f0","666106c1",false]}`,
	`{"id":873,"result":null,"error":[21,"Job not found",""]}`,
	`{"id":"5","result":null,"error":{"code":23,"message":"Low difficulty share"}}`,
	`{"id":6,"result":false,"error":"unauthorized"}`,
	`{"id":7,"method":"client.get_version","params":[]}`,
	`{"id":null,"method":"client.reconnect","params":["pool.example",3333,5]}`,
	`{"id":null,"method":"mining.set_extranonce","params":["c0ffee01",4]}`,
	`{"id":null,"method":"mining.set_version_mask","params":["1fffe000"]}`,
	`{"id":3,"result":{"version-rolling":true,"version-rolling.mask":"1fffe000"},"error":null}`,
	`{"method":"mining.notify"}`,
	`{"id":{"a":1},"method":"x","params":null}`,
	`{"id":7,"result":1,"error":[99999999999,"x"]}`,
	"\t {\"id\":7}",
	`[1,2,3]`,
	`{"id":null,"method":42,"params":[]}`,
}

// newTestClient is a Client without a connection, for calling dispatch
// directly: one call with id 7 is pending.
func newTestClient() (*Client, chan callResult) {
	c := &Client{
		pending: make(map[uint64]chan callResult),
		notes:   make(chan Notification, 1),
		done:    make(chan struct{}),
	}
	ch := make(chan callResult, 1)
	c.pending[7] = ch
	return c, ch
}

// FuzzClientDispatch feeds one line to the client's dispatcher. It must
// never panic; it may refuse only what is not a JSON object or has a
// non-string method, and then delivers nothing; a delivered notification
// re-encodes (as the server would send it) to a line that dispatches to the
// same notification; a delivered reply carries valid JSON or a *Error.
func FuzzClientDispatch(f *testing.F) {
	for _, l := range poolLines {
		f.Add([]byte(l))
	}
	for _, l := range realLines {
		f.Add([]byte(l))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		c, ch := newTestClient()
		err := c.dispatch(line)
		var note *Notification
		select {
		case n := <-c.notes:
			note = &n
		default:
		}
		var reply *callResult
		select {
		case r := <-ch:
			reply = &r
		default:
		}
		trimmed := bytes.TrimLeft(line, " \t\r")
		if err != nil {
			if !strings.Contains(err.Error(), "protocol error") {
				t.Fatalf("error %v is not a protocol error", err)
			}
			if note != nil || reply != nil {
				t.Fatal("a refused line delivered something")
			}
			// Only non-objects and non-string methods are refused.
			var obj map[string]json.RawMessage
			if len(trimmed) > 0 && trimmed[0] == '{' && json.Unmarshal(trimmed, &obj) == nil {
				method, has := obj["method"]
				if !has || isNull(method) {
					for k := range obj {
						if strings.EqualFold(k, "method") && k != "method" {
							return // encoding/json matches keys case-insensitively
						}
					}
					t.Fatalf("refused an object without a method: %q", line)
				}
			}
			return
		}
		if note != nil && reply != nil {
			t.Fatal("one line delivered a notification and a reply")
		}
		if note != nil {
			params, ok := note.Params.(json.RawMessage)
			if !ok || !json.Valid(params) {
				t.Fatalf("notification params %#v are not valid JSON", note.Params)
			}
			if len(note.ID) > 0 && (isNull(note.ID) || !json.Valid(note.ID)) {
				t.Fatalf("notification id %q", note.ID)
			}
			// Round trip through the encoder the server uses.
			id := note.ID
			if len(id) > 0 && bytes.ContainsAny(id[:1], "{[tf") {
				id = nil // not a scalar id: appendID writes null
			}
			enc, err := appendMessage(nil, id, note.Method, params)
			if err != nil {
				t.Fatalf("re-encoding %+v: %v", note, err)
			}
			c2, _ := newTestClient()
			if err := c2.dispatch(enc); err != nil {
				t.Fatalf("re-encoded %s refused: %v", enc, err)
			}
			n2 := <-c2.notes
			p2 := n2.Params.(json.RawMessage)
			want := params
			if isNull(want) {
				want = json.RawMessage("[]") // the encoder never sends null params
			}
			if n2.Method != note.Method || !jsonEqual(t, p2, want) || !bytes.Equal(bytes.TrimSpace(n2.ID), bytes.TrimSpace(id)) {
				t.Fatalf("round trip %+v -> %s -> %+v", note, enc, n2)
			}
		}
		if reply != nil {
			if id, ok := parseCallIDOf(t, trimmed); !ok || id != 7 {
				t.Fatalf("reply delivered to id 7 for %q", line)
			}
			if reply.result != nil && !json.Valid(reply.result) {
				t.Fatalf("reply result %q is not valid JSON", reply.result)
			}
			if reply.err != nil {
				var serr *Error
				if !errors.As(reply.err, &serr) {
					t.Fatalf("reply error %v is not a *Error", reply.err)
				}
			}
		}
	})
}

func parseCallIDOf(t *testing.T, line []byte) (uint64, bool) {
	var m wireMessage
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatalf("dispatched a reply from invalid JSON %q", line)
	}
	return parseCallID(m.ID)
}

// jsonEqual compares two JSON texts by value.
func jsonEqual(t *testing.T, a, b []byte) bool {
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	ja, _ := json.Marshal(va)
	jb, _ := json.Marshal(vb)
	return bytes.Equal(ja, jb)
}

// FuzzParseCallID: whatever is accepted is a decimal id (bare or quoted)
// that re-encodes to the same value, and every id the client sends is read
// back.
func FuzzParseCallID(f *testing.F) {
	for _, s := range []string{`1`, `"42"`, ` 18446744073709551615 `, `18446744073709551616`, `-1`, `"\u0035"`, `null`, `1.0`, `1e3`, `"`, `""`, `007`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		// The longest id is 20 digits, quoted and padded; longer inputs
		// only make the minimizer's ~n²/2 tries per new-coverage input
		// slow (124,441 execs/min measured without the bound).
		if len(raw) > 128 {
			return
		}
		id, ok := parseCallID(raw)
		if ok {
			text := string(bytes.TrimSpace(raw))
			if s, isStr := rawString(bytes.TrimSpace(raw)); isStr {
				text = s
			}
			if text == "" || strings.Trim(text, "0123456789") != "" {
				t.Fatalf("accepted %q (%q) as %d", raw, text, id)
			}
			for _, enc := range []string{strconv.FormatUint(id, 10), strconv.Quote(strconv.FormatUint(id, 10))} {
				if back, ok := parseCallID(json.RawMessage(enc)); !ok || back != id {
					t.Fatalf("%s read back as %d, %v", enc, back, ok)
				}
			}
		}
		// An id the client could have sent, derived from the input.
		var b [8]byte
		copy(b[:], raw)
		v := binary.LittleEndian.Uint64(b[:])
		if back, ok := parseCallID(json.RawMessage(strconv.FormatUint(v, 10))); !ok || back != v {
			t.Fatalf("own id %d read back as %d, %v", v, back, ok)
		}
	})
}

// FuzzErrorUnmarshal: a refused error value gives a *Error with code 20; an
// accepted one has a 32-bit code and survives MarshalJSON/UnmarshalJSON
// unchanged.
func FuzzErrorUnmarshal(f *testing.F) {
	for _, s := range []string{
		`[21,"Job not found",""]`, `[23,"Low difficulty share",null]`, `{"code":24,"message":"Unauthorized worker"}`,
		`"unauthorized"`, `[20]`, `[2147483648,"x"]`, `["21","x"]`, `{"code":null}`, `[1,2]`, `{}`, ` [22 , "dup" ] `, `tru`,
		`["0x15","x"]`, `[21.0,"x"]`, `[-2147483648,"\ud800"]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var e Error
		err := e.UnmarshalJSON(data)
		if err != nil {
			var serr *Error
			if !errors.As(err, &serr) || serr.Code != CodeOther {
				t.Fatalf("error %v is not a *Error with code 20", err)
			}
			if e != (Error{}) {
				t.Fatalf("a refused value changed the receiver to %+v", e)
			}
			return
		}
		if int64(e.Code) != int64(int32(e.Code)) {
			t.Fatalf("code %d is not a 32-bit integer", e.Code)
		}
		b, err := e.MarshalJSON()
		if err != nil || !json.Valid(b) {
			t.Fatalf("MarshalJSON %+v = %q, %v", e, b, err)
		}
		var back Error
		if err := back.UnmarshalJSON(b); err != nil || back != e {
			t.Fatalf("round trip %+v -> %s -> %+v, %v", e, b, back, err)
		}
	})
}

// FuzzParseNotify: an accepted notify re-encodes (as the server sends it)
// to params that parse to the same value.
func FuzzParseNotify(f *testing.F) {
	f.Add([]byte(poolLines[3][strings.Index(poolLines[3], `"params":`)+9 : len(poolLines[3])-1]))
	for _, v := range loadVectors(f) {
		if len(v.Notify) > 0 {
			f.Add([]byte(v.Notify))
		}
	}
	f.Add([]byte(`["j","00",""," ",[],"1","2","3",true,"extra"]`))
	f.Add([]byte(`["j","00","","",null,"1","2","3",true]`))
	f.Fuzz(func(t *testing.T, params []byte) {
		n, err := ParseNotify(params)
		if err != nil {
			var serr *Error
			if !errors.As(err, &serr) || serr.Code != CodeOther {
				t.Fatalf("error %v is not a *Error with code 20", err)
			}
			return
		}
		b, err := n.MarshalJSON()
		if err != nil || !json.Valid(b) {
			t.Fatalf("MarshalJSON %+v = %q, %v", n, b, err)
		}
		back, err := ParseNotify(b)
		if err != nil {
			t.Fatalf("re-encoded %s refused: %v", b, err)
		}
		if back.JobID != n.JobID || back.PrevHash != n.PrevHash || back.Coinb1 != n.Coinb1 || back.Coinb2 != n.Coinb2 ||
			back.Version != n.Version || back.NBits != n.NBits || back.NTime != n.NTime || back.CleanJobs != n.CleanJobs ||
			strings.Join(back.MerkleBranch, "\x00") != strings.Join(n.MerkleBranch, "\x00") || len(back.MerkleBranch) != len(n.MerkleBranch) {
			t.Fatalf("round trip %+v -> %s -> %+v", n, b, back)
		}
	})
}

// FuzzParseSubscribeResult: an accepted reply has hex extranonce1 of at most
// 32 bytes and an extranonce2 size in 0..32, and re-encodes (as the server
// sends it) to the same reply.
func FuzzParseSubscribeResult(f *testing.F) {
	for _, v := range loadVectors(f) {
		if len(v.SubscribeResult) > 0 {
			f.Add([]byte(v.SubscribeResult))
		}
	}
	f.Add([]byte(`[["mining.notify","s1"],"0a0b",8]`))
	f.Add([]byte(`[null,"",0]`))
	f.Add([]byte(`[[["mining.set_difficulty","d"],["mining.notify","n"]],"ff",4,"x"]`))
	f.Add([]byte(`[[["mining.notify","n",1]],"ff",4.0]`))
	f.Fuzz(func(t *testing.T, result []byte) {
		r, err := ParseSubscribeResult(result)
		if err != nil {
			var serr *Error
			if !errors.As(err, &serr) || serr.Code != CodeOther {
				t.Fatalf("error %v is not a *Error with code 20", err)
			}
			return
		}
		if len(r.Extranonce1)%2 != 0 || len(r.Extranonce1) > 2*maxExtranonce1Size || strings.Trim(strings.ToLower(r.Extranonce1), "0123456789abcdef") != "" {
			t.Fatalf("extranonce1 %q", r.Extranonce1)
		}
		if r.Extranonce2Size < 0 || r.Extranonce2Size > maxExtranonce2Size {
			t.Fatalf("extranonce2 size %d", r.Extranonce2Size)
		}
		b, err := json.Marshal(SubscribeResult(r.SessionID, r.Extranonce1, r.Extranonce2Size))
		if err != nil {
			t.Fatal(err)
		}
		if back, err := ParseSubscribeResult(b); err != nil || back != r {
			t.Fatalf("round trip %+v -> %s -> %+v, %v", r, b, back, err)
		}
	})
}
