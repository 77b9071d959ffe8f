package stratum

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestErrorJSON(t *testing.T) {
	e := Errorf(CodeDuplicate, "duplicate share %d", 7)
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `[22,"duplicate share 7",null]`; got != want {
		t.Fatalf("Marshal = %s, want %s", got, want)
	}
	var back Error
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back != *e {
		t.Fatalf("round trip = %+v, want %+v", back, *e)
	}
	if !errors.Is(e, &Error{Code: CodeDuplicate}) || errors.Is(e, &Error{Code: CodeOther}) {
		t.Fatal("errors.Is must compare codes")
	}
	if !strings.Contains(e.Error(), "22") || !strings.Contains(e.Error(), "duplicate share 7") {
		t.Fatalf("Error() = %q", e.Error())
	}

	// Escaping must survive a message with quotes and non-ASCII.
	odd := &Error{Code: CodeOther, Message: "bad \"x\"\n\u00e9"}
	b, _ = json.Marshal(odd)
	back = Error{}
	if err := json.Unmarshal(b, &back); err != nil || back != *odd {
		t.Fatalf("round trip of %q: %+v, %v", odd.Message, back, err)
	}
}

func TestErrorUnmarshalShapes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Error
	}{
		{`[21,"Job not found",null]`, Error{21, "Job not found"}},
		{`[23, "Low difficulty share"]`, Error{23, "Low difficulty share"}},
		{`[24,"Unauthorized worker","trace"]`, Error{24, "Unauthorized worker"}},
		{`[25,null,null]`, Error{25, ""}},
		{`{"code":22,"message":"Duplicate share"}`, Error{22, "Duplicate share"}},
		{`{"message":"Stale"}`, Error{20, "Stale"}},
		{`"Invalid job id"`, Error{20, "Invalid job id"}},
	} {
		var e Error
		if err := json.Unmarshal([]byte(tc.in), &e); err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if e != tc.want {
			t.Errorf("%s = %+v, want %+v", tc.in, e, tc.want)
		}
	}
	for _, in := range []string{`[]`, `[20]`, `["x","y"]`, `[20,5]`, `[1.5,"x"]`, `{"code":"a"}`, `7`, `true`, `[[[`} {
		var e Error
		if err := e.UnmarshalJSON([]byte(in)); err == nil {
			t.Errorf("%s: accepted as %+v", in, e)
		}
	}
}

func TestResponseJSON(t *testing.T) {
	for _, tc := range []struct {
		name string
		resp Response
		want string
	}{
		{"success", Response{ID: json.RawMessage(`4`), Result: true}, `{"id":4,"result":true,"error":null}`},
		{"string id", Response{ID: json.RawMessage(`"abc"`), Result: true}, `{"id":"abc","result":true,"error":null}`},
		{"no id", Response{Result: []int{1}}, `{"id":null,"result":[1],"error":null}`},
		{"nil result", Response{ID: json.RawMessage(`1`)}, `{"id":1,"result":null,"error":null}`},
		{"error", Response{ID: json.RawMessage(`2`), Result: true, Error: Errorf(CodeLowDifficulty, "low")},
			`{"id":2,"result":null,"error":[23,"low",null]}`},
		{"garbage id", Response{ID: json.RawMessage(`{"x":1}`), Result: 1}, `{"id":null,"result":1,"error":null}`},
		{"invalid id", Response{ID: json.RawMessage(`12x`), Result: 1}, `{"id":null,"result":1,"error":null}`},
	} {
		b, err := json.Marshal(tc.resp)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if string(b) != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, b, tc.want)
		}
	}
	if _, err := json.Marshal(Response{Result: func() {}}); err == nil {
		t.Fatal("an unencodable result must be an error")
	}
}

func TestEncodeNotification(t *testing.T) {
	line, err := EncodeNotification("mining.set_difficulty", []float64{0.5})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(line), `{"id":null,"method":"mining.set_difficulty","params":[0.5]}`+"\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	line, err = EncodeNotification("client.reconnect", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(line), `{"id":null,"method":"client.reconnect","params":[]}`+"\n"; got != want {
		t.Fatalf("nil params: got %q, want %q", got, want)
	}
	if _, err := EncodeNotification("x", make(chan int)); err == nil {
		t.Fatal("unencodable params must be an error")
	}

	b, err := json.Marshal(Notification{Method: "client.get_version", ID: json.RawMessage(`"v1"`)})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"id":"v1","method":"client.get_version","params":[]}`; got != want {
		t.Fatalf("notification with id: %s, want %s", got, want)
	}
}

func TestEncodeNotificationNotify(t *testing.T) {
	v := loadVectors(t)["slush-example"]
	var n NotifyParams
	if err := json.Unmarshal(v.Notify, &n); err != nil {
		t.Fatal(err)
	}
	line, err := EncodeNotification("mining.notify", n)
	if err != nil {
		t.Fatal(err)
	}
	if line[len(line)-1] != '\n' || strings.Count(string(line), "\n") != 1 {
		t.Fatalf("want exactly one trailing newline: %q", line)
	}
	var msg struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
		Params json.RawMessage `json:"params"`
	}
	if err := json.Unmarshal(line, &msg); err != nil {
		t.Fatal(err)
	}
	if string(msg.ID) != "null" || msg.Method != "mining.notify" {
		t.Fatalf("envelope: %s", line)
	}
	if got, want := compact(t, msg.Params), compact(t, v.Notify); got != want {
		t.Fatalf("params:\n got %s\nwant %s", got, want)
	}
}

func TestDecodeRequest(t *testing.T) {
	req, err := DecodeRequest([]byte(`{"id": 1, "method": "mining.subscribe", "params": ["cpuminer/2.5.1"]}`))
	if err != nil {
		t.Fatal(err)
	}
	if string(req.ID) != "1" || req.Method != "mining.subscribe" || compact(t, req.Params) != `["cpuminer/2.5.1"]` {
		t.Fatalf("decoded %+v", req)
	}
	for _, tc := range []struct{ line, id string }{
		{`{"id":"a-7","method":"m","params":[]}`, `"a-7"`},
		{`{"id":null,"method":"m","params":[]}`, `null`},
		{`{"method":"m"}`, ``},
		{`{"id":-3.5e2,"method":"m","params":null}`, `-3.5e2`},
	} {
		req, err := DecodeRequest([]byte(tc.line))
		if err != nil {
			t.Fatalf("%s: %v", tc.line, err)
		}
		if string(req.ID) != tc.id || req.Method != "m" {
			t.Fatalf("%s: decoded id %q method %q", tc.line, req.ID, req.Method)
		}
	}

	for _, tc := range []struct {
		line, id, msg string
	}{
		{`not json`, ``, "parse error"},
		{`{"id":1,"method":"x"`, ``, "parse error"},
		{`[1,2,3]`, ``, "not a JSON object"},
		{`"str"`, ``, "not a JSON object"},
		{`{"id":1,"method":5,"params":[]}`, `1`, "method must be a string"},
		{`{"id":1,"method":null,"params":[]}`, `1`, "missing method"},
		{`{"id":"q","params":[]}`, `"q"`, "missing method"},
		{`{"id":2,"method":""}`, `2`, "empty method"},
		{`{"id":3,"method":"mining.submit","params":"x"}`, `3`, "params must be an array"},
		{`{"id":4,"method":"mining.submit","params":{"a":1}}`, `4`, "params must be an array"},
		{`{"id":{"a":1},"method":"m"}`, ``, "id must be"},
		{`{"id":true,"method":"m"}`, ``, "id must be"},
		{`{"id":[1],"method":"m"}`, ``, "id must be"},
	} {
		req, err := DecodeRequest([]byte(tc.line))
		if err == nil {
			t.Errorf("%s: accepted as %+v", tc.line, req)
			continue
		}
		wantCode(t, err, CodeOther)
		if !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: error %q, want it to mention %q", tc.line, err, tc.msg)
		}
		if req == nil || string(req.ID) != tc.id {
			t.Errorf("%s: id for the error reply = %q, want %q", tc.line, req.ID, tc.id)
		}
	}

	// A miner answering one of our requests is not malformed.
	if _, err := DecodeRequest([]byte(`{"id":9,"result":"cgminer/4.10","error":null}`)); err != errNotRequest {
		t.Fatalf("response: err = %v, want errNotRequest", err)
	}
}

func TestRawStringMatchesEncodingJSON(t *testing.T) {
	for _, in := range []string{`""`, `"abc"`, `"a\"b"`, `"\u00e9t\u00e9"`, "\"\xff\xfe\"", `"tab\tx"`} {
		got, ok := rawString(json.RawMessage(in))
		var want string
		werr := json.Unmarshal([]byte(in), &want)
		if ok != (werr == nil) || got != want {
			t.Errorf("rawString(%s) = %q, %v; encoding/json = %q, %v", in, got, ok, want, werr)
		}
	}
	for _, in := range []string{`1`, `null`, `["a"]`, `"`, ``} {
		if s, ok := rawString(json.RawMessage(in)); ok {
			t.Errorf("rawString(%s) = %q, want failure", in, s)
		}
	}
}
