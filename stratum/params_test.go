package stratum

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestParseSubmitVectors(t *testing.T) {
	vs := loadVectors(t)
	p, err := ParseSubmit(vs["real-miner-share-regtest"].Submit)
	if err != nil {
		t.Fatal(err)
	}
	want := SubmitParams{
		User:        "bcrt1qe250ukcvtyhu5z9hpuahmqs75ndlh43vptpwmt.minerd-px",
		JobID:       "o-1",
		Extranonce2: []byte{0, 0, 0, 0},
		NTime:       0x6b06489e,
		Nonce:       0x8b2c0300,
	}
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("got %+v, want %+v", p, want)
	}

	p, err = ParseSubmit(vs["computed-branch-of-3"].Submit)
	if err != nil {
		t.Fatal(err)
	}
	if p.User != "x.w" || !bytes.Equal(p.Extranonce2, []byte{0x0a, 0x0b, 0x0c, 0x0d}) ||
		p.NTime != 0x6b0648a0 || p.Nonce != 1 || p.HasVersionBits {
		t.Fatalf("computed vector: %+v", p)
	}
}

func TestParseSubmitVersionBits(t *testing.T) {
	p, err := ParseSubmit(json.RawMessage(`["w","j","0000000a","6B06489E","FFFFFFFF","1fffe000"]`))
	if err != nil {
		t.Fatal(err)
	}
	if !p.HasVersionBits || p.VersionBits != 0x1fffe000 || p.NTime != 0x6b06489e || p.Nonce != math.MaxUint32 {
		t.Fatalf("got %+v", p)
	}
}

func TestParseSubmitMalformed(t *testing.T) {
	for _, in := range []string{
		``, `null`, `[]`, `{}`, `"x"`, `5`, `[[[[`, `["w","j","00","6b06489e"]`,
		`["w","j","00","6b06489e","8b2c0300","1fffe000","extra"]`,
		`[1,"j","00","6b06489e","8b2c0300"]`,
		`["w",null,"00","6b06489e","8b2c0300"]`,
		`["w","j",0,"6b06489e","8b2c0300"]`,
		`["w","j","0","6b06489e","8b2c0300"]`,          // odd-length extranonce2
		`["w","j","zz","6b06489e","8b2c0300"]`,         // not hex
		`["w","j","00","6b06489","8b2c0300"]`,          // 7 digits
		`["w","j","00","6b06489e0","8b2c0300"]`,        // 9 digits
		`["w","j","00","6b06489e","8b2c030g"]`,         // bad digit
		`["w","j","00","6b06489e","-8b2c030"]`,         // sign
		`["w","j","00","6b06489e",2334916352]`,         // nonce as number
		`["w","j","00","6b06489e","8b2c0300",null]`,    // null version bits
		`["w","j","00","6b06489e","8b2c0300","1fffe"]`, // short version bits
		`["w","j","00",["6b06489e"],"8b2c0300"]`,       // nested garbage
		`["w","j","00","0x6b0648","8b2c0300"]`,
		`["w","j","00","6b06489e","8b2c0300"`,
	} {
		p, err := ParseSubmit(json.RawMessage(in))
		if err == nil {
			t.Errorf("%s: accepted as %+v", in, p)
			continue
		}
		wantCode(t, err, CodeOther)
	}
}

func TestParseSubscribe(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want SubscribeParams
	}{
		{``, SubscribeParams{}},
		{`null`, SubscribeParams{}},
		{`[]`, SubscribeParams{}},
		{`["cpuminer/2.5.1"]`, SubscribeParams{UserAgent: "cpuminer/2.5.1"}},
		{`["bmminer/2.0.0","deadbeef"]`, SubscribeParams{UserAgent: "bmminer/2.0.0", SessionID: "deadbeef"}},
		{`["cgminer/4.10", null]`, SubscribeParams{UserAgent: "cgminer/4.10"}},
		{`["ua","sid","pool.example",3333]`, SubscribeParams{UserAgent: "ua", SessionID: "sid"}},
	} {
		got, err := ParseSubscribe(json.RawMessage(tc.in))
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("%s = %+v, want %+v", tc.in, got, tc.want)
		}
	}
	for _, in := range []string{`{}`, `"ua"`, `[1]`, `["ua",2]`, `[["ua"]]`, `[true]`, `[`} {
		if got, err := ParseSubscribe(json.RawMessage(in)); err == nil {
			t.Errorf("%s: accepted as %+v", in, got)
		} else {
			wantCode(t, err, CodeOther)
		}
	}
}

func TestParseAuthorize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want AuthorizeParams
	}{
		{`["addr.worker","x"]`, AuthorizeParams{"addr.worker", "x"}},
		{`["addr.worker"]`, AuthorizeParams{User: "addr.worker"}},
		{`["addr.worker",null]`, AuthorizeParams{User: "addr.worker"}},
	} {
		got, err := ParseAuthorize(json.RawMessage(tc.in))
		if err != nil || got != tc.want {
			t.Errorf("%s = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{``, `null`, `[]`, `[null]`, `[1,"x"]`, `["u",1]`, `["u","p","q"]`, `{"user":"u"}`, `[["u"]]`} {
		if got, err := ParseAuthorize(json.RawMessage(in)); err == nil {
			t.Errorf("%s: accepted as %+v", in, got)
		} else {
			wantCode(t, err, CodeOther)
		}
	}
}

func TestParseConfigure(t *testing.T) {
	in := `[["version-rolling","minimum-difficulty","subscribe-extranonce"],
		{"version-rolling.mask":"1fffe000","version-rolling.min-bit-count":2,"minimum-difficulty.value":2048}]`
	p, err := ParseConfigure(json.RawMessage(in))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p.Extensions, []string{"version-rolling", "minimum-difficulty", "subscribe-extranonce"}) ||
		!p.HasVersionRolling || p.VersionRollingMask != 0x1fffe000 || p.VersionRollingMinBitCount != 2 ||
		!p.HasMinimumDifficulty || p.MinimumDifficulty != 2048 {
		t.Fatalf("got %+v", p)
	}
	if string(p.Raw["version-rolling.mask"]) != `"1fffe000"` || len(p.Raw) != 3 {
		t.Fatalf("raw = %v", p.Raw)
	}

	// Only the extensions asked for are interpreted.
	p, err = ParseConfigure(json.RawMessage(`[["minimum-difficulty"],{"minimum-difficulty.value":0.5,"version-rolling.mask":"zz"}]`))
	if err != nil {
		t.Fatal(err)
	}
	if p.HasVersionRolling || !p.HasMinimumDifficulty || p.MinimumDifficulty != 0.5 {
		t.Fatalf("got %+v", p)
	}

	// Firmware that omits the mask accepts any mask.
	p, err = ParseConfigure(json.RawMessage(`[["version-rolling"],{}]`))
	if err != nil {
		t.Fatal(err)
	}
	if !p.HasVersionRolling || p.VersionRollingMask != math.MaxUint32 || p.VersionRollingMinBitCount != 0 {
		t.Fatalf("got %+v", p)
	}
	p, err = ParseConfigure(json.RawMessage(`[["version-rolling"],{"version-rolling.mask":"e000"}]`))
	if err != nil || p.VersionRollingMask != 0xe000 {
		t.Fatalf("unpadded mask: %+v, %v", p, err)
	}
	p, err = ParseConfigure(json.RawMessage(`[[]]`))
	if err != nil || len(p.Extensions) != 0 || p.Raw == nil {
		t.Fatalf("no extensions: %+v, %v", p, err)
	}

	for _, in := range []string{
		``, `null`, `[]`, `{}`, `[null,{}]`, `["version-rolling",{}]`, `[[1],{}]`, `[[],[]]`, `[[],"x"]`,
		`[[],{},{}]`,
		`[["version-rolling"],{"version-rolling.mask":"1fffe0000"}]`,
		`[["version-rolling"],{"version-rolling.mask":"xyz"}]`,
		`[["version-rolling"],{"version-rolling.mask":""}]`,
		`[["version-rolling"],{"version-rolling.mask":536862720}]`,
		`[["version-rolling"],{"version-rolling.mask":"+fff"}]`,
		`[["version-rolling"],{"version-rolling.min-bit-count":2.5}]`,
		`[["version-rolling"],{"version-rolling.min-bit-count":-1}]`,
		`[["version-rolling"],{"version-rolling.min-bit-count":"2"}]`,
		`[["minimum-difficulty"],{}]`,
		`[["minimum-difficulty"],{"minimum-difficulty.value":0}]`,
		`[["minimum-difficulty"],{"minimum-difficulty.value":-5}]`,
		`[["minimum-difficulty"],{"minimum-difficulty.value":[1]}]`,
		`[["minimum-difficulty"],{"minimum-difficulty.value":"NaN"}]`,
	} {
		if got, err := ParseConfigure(json.RawMessage(in)); err == nil {
			t.Errorf("%s: accepted as %+v", in, got)
		} else {
			wantCode(t, err, CodeOther)
		}
	}
}

func TestParseSuggestDifficulty(t *testing.T) {
	for in, want := range map[string]float64{
		`[1024]`:     1024,
		`[0.001]`:    0.001,
		`["512"]`:    512,
		`[1e3]`:      1000,
		`[ "2.5" ]`:  2.5,
		`[65536.0 ]`: 65536,
	} {
		got, err := ParseSuggestDifficulty(json.RawMessage(in))
		if err != nil || got != want {
			t.Errorf("%s = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{
		``, `null`, `[]`, `[0]`, `[-1]`, `["0"]`, `["NaN"]`, `["Inf"]`, `["-Inf"]`, `["1e400"]`, `[1e400]`,
		`[true]`, `[null]`, `[[1]]`, `["abc"]`, `[1,2]`, `{"d":1}`, `"5"`, `5`, `["0x10"]`, `[""]`,
	} {
		if got, err := ParseSuggestDifficulty(json.RawMessage(in)); err == nil {
			t.Errorf("%s: accepted as %v", in, got)
		} else {
			wantCode(t, err, CodeOther)
		}
	}
}

func TestNotifyParamsVectors(t *testing.T) {
	vs := loadVectors(t)
	var n NotifyParams
	if err := json.Unmarshal(vs["real-miner-share-regtest"].Notify, &n); err != nil {
		t.Fatal(err)
	}
	if n.JobID != "o-1" ||
		n.PrevHash != "092cfaedffd05c1ce96dcbcdd2c98b45bc63e28df671a6d12411cad70000001d" ||
		len(n.MerkleBranch) != 0 || n.MerkleBranch == nil ||
		n.Version != "20000000" || n.NBits != "207fffff" || n.NTime != "6b06489e" || !n.CleanJobs ||
		len(n.Coinb1) != 132 || n.Coinb1[len(n.Coinb1)-8:] != "00000000" {
		t.Fatalf("real notify: %+v", n)
	}

	for name, v := range vs {
		var n NotifyParams
		if err := json.Unmarshal(v.Notify, &n); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		b, err := json.Marshal(n)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := compact(t, b), compact(t, v.Notify); got != want {
			t.Fatalf("%s round trip:\n got %s\nwant %s", name, got, want)
		}
	}
	n = NotifyParams{}
	if err := json.Unmarshal(vs["computed-branch-of-3"].Notify, &n); err != nil {
		t.Fatal(err)
	}
	if len(n.MerkleBranch) != 3 || n.MerkleBranch[2] != "1f3cb18e896256d7d6bb8c11a6ec71f005c75de05e39beae5d93bbd1e2c8b7a9" {
		t.Fatalf("branch: %v", n.MerkleBranch)
	}
	if err := json.Unmarshal(vs["slush-example"].Notify, &n); err != nil || n.CleanJobs || n.JobID != "bf" {
		t.Fatalf("slush: %+v, %v", n, err)
	}
}

func TestNotifyParamsMalformed(t *testing.T) {
	ok := `["j","p","c1","c2",[],"v","b","t",true]`
	if _, err := ParseNotify(json.RawMessage(ok)); err != nil {
		t.Fatalf("baseline: %v", err)
	}
	if _, err := ParseNotify(json.RawMessage(`["j","p","c1","c2",[],"v","b","t",true,"extra"]`)); err != nil {
		t.Fatalf("trailing extras must be ignored: %v", err)
	}
	for _, in := range []string{
		``, `null`, `[]`, `{}`,
		`["j","p","c1","c2",[],"v","b","t"]`,
		`["j","p","c1","c2",[],"v","b","t","true"]`,
		`["j","p","c1","c2",[],"v","b","t",null]`,
		`["j","p","c1","c2",null,"v","b","t",true]`,
		`["j","p","c1","c2",[1],"v","b","t",true]`,
		`["j","p","c1","c2","","v","b","t",true]`,
		`[1,"p","c1","c2",[],"v","b","t",true]`,
		`["j","p","c1","c2",[],"v",7,"t",true]`,
	} {
		var n NotifyParams
		if err := json.Unmarshal([]byte(in), &n); err == nil && in != `` {
			t.Errorf("%s: accepted as %+v", in, n)
		}
		if _, err := ParseNotify(json.RawMessage(in)); err == nil {
			t.Errorf("ParseNotify(%s) accepted", in)
		} else {
			wantCode(t, err, CodeOther)
		}
	}
}

func TestSubscribeResult(t *testing.T) {
	b, err := json.Marshal(SubscribeResult("ab12", "08000002", 4))
	if err != nil {
		t.Fatal(err)
	}
	want := `[[["mining.set_difficulty","ab12"],["mining.notify","ab12"]],"08000002",4]`
	if string(b) != want {
		t.Fatalf("got %s, want %s", b, want)
	}
	r, err := ParseSubscribeResult(b)
	if err != nil || r != (SubscribeReply{"ab12", "08000002", 4}) {
		t.Fatalf("round trip: %+v, %v", r, err)
	}
}

func TestParseSubscribeResultVectors(t *testing.T) {
	vs := loadVectors(t)
	r, err := ParseSubscribeResult(vs["real-miner-share-regtest"].SubscribeResult)
	if err != nil {
		t.Fatal(err)
	}
	if r != (SubscribeReply{SessionID: "c", Extranonce1: "00000028", Extranonce2Size: 4}) {
		t.Fatalf("real: %+v", r)
	}
	r, err = ParseSubscribeResult(vs["slush-example"].SubscribeResult)
	if err != nil {
		t.Fatal(err)
	}
	// The notify subscription id is the session id a miner resumes with.
	if r != (SubscribeReply{SessionID: "ae6812eb4cd7735a302a8a9dd95cf71f", Extranonce1: "08000002", Extranonce2Size: 4}) {
		t.Fatalf("slush: %+v", r)
	}

	for in, want := range map[string]SubscribeReply{
		`[["mining.notify","s1"],"0a0b",8]`:        {"s1", "0a0b", 8},
		`[[],"0a0b",2]`:                            {"", "0a0b", 2},
		`[null,"",4]`:                              {"", "", 4},
		`[[["mining.set_difficulty","d"]],"ff",4]`: {"d", "ff", 4},
		`[[["mining.notify","n",1]],"ff",4.0]`:     {"n", "ff", 4},
		`[[["mining.set_difficulty","d"],["mining.notify","n"]],"ff",4,"x"]`: {"n", "ff", 4},
	} {
		got, err := ParseSubscribeResult(json.RawMessage(in))
		if err != nil || got != want {
			t.Errorf("%s = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{
		``, `null`, `[]`, `{}`, `true`, `[[],"00"]`, `[[],"0",4]`, `[[],"zz",4]`, `[[],1,4]`, `[[],"00","4"]`,
		`[[],"00",4.5]`, `[[],"00",-1]`, `[[],"00",33]`, `[[],"00",null]`, `["x","00",4]`, `[[1],"00",4]`,
		`[[["a"]],"00",4]`, `[[[1,2]],"00",4]`, `[["mining.notify",5],"00",4]`,
		`[[],"` + strings.Repeat("ab", 33) + `",4]`,
	} {
		if got, err := ParseSubscribeResult(json.RawMessage(in)); err == nil {
			t.Errorf("%s: accepted as %+v", in, got)
		} else {
			wantCode(t, err, CodeOther)
		}
	}
}
