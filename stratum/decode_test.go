package stratum

import (
	"bytes"
	"reflect"
	"testing"
)

// FuzzDecoderAgrees is the differential test of the hand-written decoder:
// whatever the line, Decoder.Decode and Request.Submit must give exactly
// what DecodeRequest and ParseSubmit give.
func FuzzDecoderAgrees(f *testing.F) {
	for _, l := range realLines {
		f.Add([]byte(l))
	}
	for _, l := range []string{
		`{"id":null,"method":"mining.submit","params":["x.w","o-1","","6b0648a0","00000001"]}`,
		`{"params":["a","b","0A0b","6B0648A0","00000001"],"jsonrpc":"2.0","method":"mining.submit","id":"7"}`,
		`{"id":1,"method":"mining.submit","params":["a","b","0","6b0648a0","00000001"]}`,
		`{"id":-0.5e+3,"method":"x","params":[]}`,
		`{"id":1,"id":2,"method":"x"}`,
		`{"ID":1,"method":"x"}`,
		`{"id":1,"method":"mining.submit","params":["é","b","00","6b0648a0","0000000g"]}`,
		` {"id" : 01 , "method" : "a" } `,
		`{"id":true,"method":"a"}`,
		`{"id":1,"method":"","params":[]}`,
		`{"id":1,"method":"a","params":null}`,
		"{\"id\":1,\"method\":\"a\\u0062\"}",
		"\v{\"id\":1,\"method\":\"a\"}",
	} {
		f.Add([]byte(l))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		var d Decoder
		orig := bytes.Clone(line)
		got, gerr := d.Decode(line)
		want, werr := DecodeRequest(orig)
		if (gerr == nil) != (werr == nil) || (gerr != nil && gerr.Error() != werr.Error()) {
			t.Fatalf("errors differ: %v, want %v", gerr, werr)
		}
		if !bytes.Equal(got.ID, want.ID) || (got.ID == nil) != (want.ID == nil) ||
			got.Method != want.Method ||
			!bytes.Equal(got.Params, want.Params) || (got.Params == nil) != (want.Params == nil) {
			t.Fatalf("decoded %q %q %q, want %q %q %q", got.ID, got.Method, got.Params, want.ID, want.Method, want.Params)
		}
		if gerr != nil {
			return
		}
		gs, gerr := got.Submit()
		ws, werr := ParseSubmit(want.Params)
		if (gerr == nil) != (werr == nil) || (gerr != nil && gerr.Error() != werr.Error()) {
			t.Fatalf("submit errors differ: %v, want %v", gerr, werr)
		}
		if !reflect.DeepEqual(gs, ws) {
			t.Fatalf("submit %+v, want %+v", gs, ws)
		}
		// What the decoder handed out is its own: the line may be reused.
		for i := range line {
			line[i] = 'x'
		}
		if !bytes.Equal(got.ID, want.ID) || !bytes.Equal(got.Params, want.Params) {
			t.Fatal("request aliases the line")
		}
		if gs2, _ := got.Submit(); !reflect.DeepEqual(gs2, ws) {
			t.Fatal("submit aliases the line")
		}
	})
}

// TestDecoderKeepsRequests pins that a request stays intact while later
// requests are decoded: handlers may answer after Handle returned.
func TestDecoderKeepsRequests(t *testing.T) {
	var d Decoder
	line := []byte(realLines[2])
	first, err := d.Decode(line)
	if err != nil {
		t.Fatal(err)
	}
	firstSub, _ := first.Submit()
	for i := range 1000 {
		l := bytes.Replace(line, []byte(`"id": 4`), []byte(`"id": 5`), 1)
		l = bytes.Replace(l, []byte("8b2c0300"), []byte(hex32(uint32(i))), 1)
		if _, err := d.Decode(l); err != nil {
			t.Fatal(err)
		}
	}
	if string(first.ID) != "4" || first.Method != "mining.submit" {
		t.Fatalf("first request changed: %q %q", first.ID, first.Method)
	}
	if again, _ := first.Submit(); !reflect.DeepEqual(again, firstSub) || again.Nonce != 0x8b2c0300 {
		t.Fatalf("first submit changed: %+v", again)
	}
}

// TestDecoderFastPath pins that the lines real miners send take the fast
// path: the fuzz target only proves agreement, not that it is used.
func TestDecoderFastPath(t *testing.T) {
	for _, l := range []string{realLines[2], realLines[6], `{"jsonrpc":"2.0","id":"a","method":"mining.submit","params":["w","j","0a0b0c0d","6b0648a0","00000001"]}`} {
		var f fastRequest
		if !f.scan([]byte(l)) {
			t.Errorf("slow path for %s", l)
		}
		var d Decoder
		req, err := d.Decode([]byte(l))
		if err != nil || !req.hasSubmit {
			t.Errorf("submit not pre-parsed for %s: %v", l, err)
		}
	}
}

// A session that subscribed and authorized and went quiet must not pin
// the decoder's arenas: they are for the submits of busy miners.
func TestDecoderHoldsNothingForOtherRequests(t *testing.T) {
	var d Decoder
	for _, l := range []string{
		`{"id":1,"method":"mining.subscribe","params":["cgminer/4.10"]}`,
		`{"id":2,"method":"mining.authorize","params":["addr.w","x"]}`,
		`{"id":3,"method":"mining.unknown_thing","params":[]}`,
	} {
		req, err := d.Decode([]byte(l))
		if err != nil {
			t.Fatal(err)
		}
		if want, _ := DecodeRequest([]byte(l)); !reflect.DeepEqual(req, want) {
			t.Fatalf("%s: %+v, want %+v", l, req, want)
		}
		if cap(req.ID) != len(req.ID) || cap(req.Params) != len(req.Params) {
			t.Fatalf("%s: uncapped raw fields", l)
		}
	}
	if d.reqs != nil || d.raw != nil || d.strs.Cap() != 0 {
		t.Fatalf("decoder holds %d requests, %d raw bytes, %d string bytes", cap(d.reqs), cap(d.raw), d.strs.Cap())
	}
}
