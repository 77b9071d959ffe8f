package stratum

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Request is a client→server call. ID is kept raw so it can be echoed back
// exactly as the miner sent it (number, string or null).
type Request struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`

	// submit is Params already parsed by a Decoder, for Submit.
	submit    SubmitParams
	hasSubmit bool
}

// wireMessage is the union of every Stratum message shape. Decoding into raw
// members first lets us tell a wrong-typed field from bad JSON and still
// echo the id in the error reply.
type wireMessage struct {
	ID     json.RawMessage `json:"id"`
	Method json.RawMessage `json:"method"`
	Params json.RawMessage `json:"params"`
	Result json.RawMessage `json:"result"`
	Error  json.RawMessage `json:"error"`
}

// errNotRequest marks a well-formed message without a method that carries a
// result or error: a miner answering one of our requests (client.get_version
// and friends). It is not malformed, there is just nothing to dispatch.
var errNotRequest = Errorf(CodeOther, "message is a response, not a request")

// DecodeRequest parses one line into a Request. Every failure is a *Error
// with CodeOther. When the line was a JSON object whose id could be read,
// that id is returned in the (otherwise empty) Request so the error reply
// can carry it.
func DecodeRequest(line []byte) (*Request, error) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 || line[0] != '{' {
		if len(line) > 0 && json.Valid(line) {
			return &Request{}, Errorf(CodeOther, "invalid request: not a JSON object")
		}
		return &Request{}, Errorf(CodeOther, "parse error: %s", jsonSyntaxError(line))
	}
	var m wireMessage
	if err := json.Unmarshal(line, &m); err != nil {
		return &Request{}, Errorf(CodeOther, "parse error: %s", jsonSyntaxError(line))
	}
	req := &Request{}
	if len(m.ID) > 0 {
		switch m.ID[0] {
		case '"', 'n', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			req.ID = m.ID
		default:
			return req, Errorf(CodeOther, "invalid request: id must be a number, string or null")
		}
	}
	if len(m.Method) == 0 || isNull(m.Method) {
		if len(m.Result) > 0 || len(m.Error) > 0 {
			return req, errNotRequest
		}
		return req, Errorf(CodeOther, "invalid request: missing method")
	}
	method, ok := rawString(m.Method)
	if !ok {
		return req, Errorf(CodeOther, "invalid request: method must be a string")
	}
	if method == "" {
		return req, Errorf(CodeOther, "invalid request: empty method")
	}
	req.Method = method
	if len(m.Params) > 0 && m.Params[0] != '[' && !isNull(m.Params) {
		return req, Errorf(CodeOther, "invalid request: params must be an array")
	}
	req.Params = m.Params
	return req, nil
}

// jsonSyntaxError describes why line is not JSON without echoing the line:
// error replies must not reflect arbitrary bytes back at their sender.
func jsonSyntaxError(line []byte) string {
	if len(line) == 0 {
		return "empty message"
	}
	var v any
	err := json.Unmarshal(line, &v)
	if se, ok := err.(*json.SyntaxError); ok {
		return fmt.Sprintf("invalid JSON at offset %d", se.Offset)
	}
	if err != nil {
		return "invalid JSON"
	}
	return "unexpected JSON value"
}

// Response is a server→client reply. MarshalJSON always emits all three
// members: "error" is null on success and "result" is null on error.
type Response struct {
	ID     json.RawMessage
	Result any
	Error  *Error
}

// MarshalJSON implements json.Marshaler.
func (r Response) MarshalJSON() ([]byte, error) {
	return r.appendJSON(nil)
}

func (r *Response) appendJSON(dst []byte) ([]byte, error) {
	dst = append(dst, `{"id":`...)
	dst = appendID(dst, r.ID)
	dst = append(dst, `,"result":`...)
	if r.Error != nil || r.Result == nil {
		dst = append(dst, "null"...)
	} else if b, ok := r.Result.(bool); ok {
		// An accepted share's reply: no trip through encoding/json.
		dst = strconv.AppendBool(dst, b)
	} else {
		res, err := json.Marshal(r.Result)
		if err != nil {
			return nil, fmt.Errorf("stratum: encode result: %w", err)
		}
		dst = append(dst, res...)
	}
	dst = append(dst, `,"error":`...)
	if r.Error != nil {
		dst = r.Error.appendJSON(dst)
	} else {
		dst = append(dst, "null"...)
	}
	return append(dst, '}'), nil
}

// appendID writes id, or null when it is empty or not a JSON scalar id, so a
// reply is always valid JSON whatever a caller put in the id.
func appendID(dst []byte, id json.RawMessage) []byte {
	id = bytes.TrimSpace(id)
	if len(id) == 0 || !json.Valid(id) {
		return append(dst, "null"...)
	}
	switch id[0] {
	case '{', '[', 't', 'f':
		return append(dst, "null"...)
	}
	return append(dst, id...)
}

// Notification is a server→client message. On the wire it has "id": null,
// except for the few server→client requests that expect an answer
// (client.get_version, client.show_message with an id), which keep their ID
// so the receiver can reply. The client delivers Params as json.RawMessage.
type Notification struct {
	Method string
	Params any
	ID     json.RawMessage
}

// MarshalJSON implements json.Marshaler.
func (n Notification) MarshalJSON() ([]byte, error) {
	return appendMessage(nil, n.ID, n.Method, n.Params)
}

// EncodeNotification returns the complete wire line for a notification,
// trailing newline included. Encode once and hand the same slice to
// Session.SendLine of every session: a new job reaches thousands of miners
// without being marshalled thousands of times.
func EncodeNotification(method string, params any) ([]byte, error) {
	size := 256
	switch p := params.(type) {
	case NotifyParams:
		size = p.encodedSizeHint() + len(method) + 40
	case *NotifyParams:
		if p != nil {
			size = p.encodedSizeHint() + len(method) + 40
		}
	}
	line, err := appendMessage(make([]byte, 0, size), nil, method, params)
	if err != nil {
		return nil, err
	}
	return append(line, '\n'), nil
}

// appendMessage encodes a request-shaped message. Nil params become [],
// because miners index into params and some crash on null.
func appendMessage(dst []byte, id json.RawMessage, method string, params any) ([]byte, error) {
	dst = append(dst, `{"id":`...)
	dst = appendID(dst, id)
	dst = append(dst, `,"method":`...)
	dst = appendJSONString(dst, method)
	dst = append(dst, `,"params":`...)
	var err error
	dst, err = appendParams(dst, params)
	if err != nil {
		return nil, fmt.Errorf("stratum: encode %s params: %w", method, err)
	}
	return append(dst, '}'), nil
}

func appendParams(dst []byte, params any) ([]byte, error) {
	switch p := params.(type) {
	case nil:
		return append(dst, "[]"...), nil
	case NotifyParams:
		return p.appendJSON(dst), nil
	case *NotifyParams:
		if p == nil {
			return append(dst, "[]"...), nil
		}
		return p.appendJSON(dst), nil
	}
	b, err := json.Marshal(params)
	if err != nil {
		return nil, err
	}
	if string(b) == "null" {
		b = []byte("[]")
	}
	return append(dst, b...), nil
}

// appendJSONString appends s as a JSON string. Stratum strings are almost
// always plain ASCII (hex, method names, job ids), so that case is copied
// directly; anything else goes through encoding/json for correct escaping.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			b, _ := json.Marshal(s) // marshalling a string cannot fail
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// rawString extracts a JSON string from an already validated raw value. The
// common case, no escapes and valid UTF-8, needs no second decoding pass;
// otherwise encoding/json applies the exact same rules as a full decode.
func rawString(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	body := raw[1 : len(raw)-1]
	if bytes.IndexByte(body, '\\') < 0 && utf8.Valid(body) {
		return string(body), true
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}
