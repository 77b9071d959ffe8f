// Package jsonrpctest helps fuzz the JSON-RPC clients (internal/jsonrpc,
// pool/node, payout/walletrpc) with replies that never touch a socket.
package jsonrpctest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
)

// Canned is an http.RoundTripper that answers every request with one
// response, so a fuzzed reply reaches a client's decoding through
// net/http without a socket. Calls counts the requests it answered.
type Canned struct {
	Status int
	Body   []byte
	Calls  int
}

// RoundTrip implements http.RoundTripper.
func (rt *Canned) RoundTrip(req *http.Request) (*http.Response, error) {
	rt.Calls++
	if req.Body != nil {
		req.Body.Close()
	}
	return &http.Response{
		StatusCode: rt.Status, Status: http.StatusText(rt.Status), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{}, Body: io.NopCloser(bytes.NewReader(rt.Body)), ContentLength: int64(len(rt.Body)), Request: req,
	}, nil
}

// Envelope decodes a reply body the slow, explicit way, as the reference
// the clients' decoding is held to: a JSON object (or null) whose members
// named result and error, in any case, the last one winning (as
// encoding/json picks them), are the reply's parts; ok is false for
// anything else.
func Envelope(data []byte) (result, rerr json.RawMessage, ok bool) {
	if !json.Valid(data) {
		return nil, nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, _ := dec.Token()
	if tok == nil {
		return nil, nil, true // null
	}
	if d, isDelim := tok.(json.Delim); !isDelim || d != '{' {
		return nil, nil, false
	}
	for dec.More() {
		k, _ := dec.Token()
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, nil, false
		}
		switch key, _ := k.(string); {
		case strings.EqualFold(key, "result"):
			result = v
		case strings.EqualFold(key, "error"):
			rerr = v
		}
	}
	return result, rerr, true
}
