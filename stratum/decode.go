package stratum

import (
	"encoding/hex"
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// Decoder decodes the request lines of one connection. It reads the shape
// every miner sends for mining.submit and the other hot requests,
//
//	{"id":4,"method":"mining.submit","params":["w","j","00","6b06489e","8b2c0300"]}
//
// by hand, without allocating per request, and hands everything else to
// DecodeRequest, so the two agree on every input (FuzzDecoderAgrees).
//
// Requests and the memory they point to are never reused: a handler may
// keep a Request, its ID and the strings of its Submit after Handle has
// returned (an accepted share is answered later, from the ledger). They are
// carved from chunks that grow with the session's traffic, so a busy
// session allocates a chunk every few dozen requests and an idle one holds
// a few hundred bytes. A Decoder is not safe for concurrent use.
type Decoder struct {
	reqs  []Request       // handed out front to back
	raw   []byte          // append-only: ids, params, extranonce2
	strs  strings.Builder // append-only: worker names, job ids, methods
	chunk int             // next chunk size step, grows with traffic
}

// decoder chunk sizes: the smallest fits a subscribe and an authorize, the
// largest makes a submit cost a small fraction of an allocation.
const (
	minDecoderChunk = 2
	maxDecoderChunk = 32
)

// Decode parses one line like DecodeRequest, with the same results.
func (d *Decoder) Decode(line []byte) (*Request, error) {
	var f fastRequest
	if !f.scan(line) {
		return DecodeRequest(line)
	}
	if string(f.method) != "mining.submit" {
		// A session sends a handful of other requests, mostly before its
		// first share: each is allocated on its own, so the arenas, and
		// what an idle session holds between requests, are a busy
		// miner's only.
		method := knownMethod(f.method)
		if method == "" {
			method = string(f.method)
		}
		return &Request{ID: cloneRaw(f.id), Method: method, Params: cloneRaw(f.params)}, nil
	}
	req := d.request()
	req.ID = d.keepRaw(f.id)
	req.Method = "mining.submit"
	req.Params = d.keepRaw(f.params)
	if f.n == 5 || f.n == 6 {
		d.submit(req, &f)
	}
	return req, nil
}

// cloneRaw copies b with its capacity capped, as keepRaw does.
func cloneRaw(b []byte) json.RawMessage {
	if b == nil {
		return nil
	}
	c := make([]byte, len(b))
	copy(c, b)
	return c
}

func (d *Decoder) request() *Request {
	if len(d.reqs) == 0 {
		d.grow()
		d.reqs = make([]Request, d.chunk)
	}
	req := &d.reqs[0]
	d.reqs = d.reqs[1:]
	return req
}

// grow steps the chunk size up: a session that keeps sending earns bigger
// chunks, one that sent its subscribe and authorize holds small ones.
func (d *Decoder) grow() {
	d.chunk = min(max(2*d.chunk, minDecoderChunk), maxDecoderChunk)
}

// keepRaw copies b to the arena; the result is capped so that an append by
// its holder copies instead of overwriting a neighbour.
func (d *Decoder) keepRaw(b []byte) json.RawMessage {
	if b == nil {
		return nil
	}
	if cap(d.raw)-len(d.raw) < len(b) {
		d.grow()
		d.raw = make([]byte, 0, max(len(b), 64*d.chunk))
	}
	from := len(d.raw)
	d.raw = append(d.raw, b...)
	return d.raw[from:len(d.raw):len(d.raw)]
}

// keepString copies b to the string arena. Builder only ever appends, so
// the strings handed out earlier stay valid and unchanged.
func (d *Decoder) keepString(b []byte) string {
	if d.strs.Cap()-d.strs.Len() < len(b) {
		d.grow()
		d.strs = strings.Builder{}
		d.strs.Grow(max(len(b), 48*d.chunk))
	}
	from := d.strs.Len()
	d.strs.Write(b)
	return d.strs.String()[from:]
}

// knownMethod returns the well-known method names as constants, "" for
// others.
func knownMethod(b []byte) string {
	switch string(b) { // no allocation: the conversion only feeds the switch
	case "mining.submit":
		return "mining.submit"
	case "mining.subscribe":
		return "mining.subscribe"
	case "mining.authorize":
		return "mining.authorize"
	case "mining.configure":
		return "mining.configure"
	case "mining.extranonce.subscribe":
		return "mining.extranonce.subscribe"
	case "mining.suggest_difficulty":
		return "mining.suggest_difficulty"
	}
	return ""
}

// submit pre-parses a plain mining.submit for Request.Submit. Anything
// that would be an error is left to ParseSubmit, so errors are worded once.
func (d *Decoder) submit(req *Request, f *fastRequest) {
	en2 := f.field(2)
	ntime, ok1 := fastHex32(f.field(3))
	nonce, ok2 := fastHex32(f.field(4))
	var vbits uint32
	ok3 := true
	if f.n == 6 {
		vbits, ok3 = fastHex32(f.field(5))
	}
	if !ok1 || !ok2 || !ok3 || len(en2)%2 != 0 || len(en2) > 2*maxFastExtranonce2 {
		return
	}
	var buf [maxFastExtranonce2]byte
	if _, err := hex.Decode(buf[:len(en2)/2], en2); err != nil {
		return
	}
	req.submit = SubmitParams{
		User:           d.keepString(f.field(0)),
		JobID:          d.keepString(f.field(1)),
		Extranonce2:    d.keepRaw(buf[:len(en2)/2]),
		NTime:          ntime,
		Nonce:          nonce,
		VersionBits:    vbits,
		HasVersionBits: f.n == 6,
	}
	if req.submit.Extranonce2 == nil {
		req.submit.Extranonce2 = []byte{} // as hex.DecodeString("") has it
	}
	req.hasSubmit = true
}

// maxFastExtranonce2 bounds the extranonce2 the fast path decodes on the
// stack; real ones are 4 to 8 bytes, longer ones take ParseSubmit.
const maxFastExtranonce2 = 32

// Submit returns the request's params as ParseSubmit(r.Params) does,
// without parsing them again when the Decoder already has.
func (r *Request) Submit() (SubmitParams, error) {
	if r.hasSubmit {
		return r.submit, nil
	}
	return ParseSubmit(r.Params)
}

func fastHex32(s []byte) (uint32, bool) {
	if len(s) != 8 {
		return 0, false
	}
	var v uint32
	for _, c := range s {
		d := unhex(c)
		if d > 15 {
			return 0, false
		}
		v = v<<4 | uint32(d)
	}
	return v, true
}

// fastRequest is a request line of the plain shape, as spans of the line.
type fastRequest struct {
	line   []byte
	id     []byte // nil when absent
	method []byte // without quotes
	params []byte // the whole array, nil when absent
	n      int    // string elements in params
	fields [6][2]int
}

func (f *fastRequest) field(i int) []byte { return f.line[f.fields[i][0]:f.fields[i][1]] }

// scan accepts only what it can read exactly as encoding/json would: an
// object whose members are each of "id" (number, null or a string without
// escapes), "method" (a string without escapes), "params" (an array of
// strings without escapes) and "jsonrpc" (likewise a string) at most
// once, in any order. Anything else — other members, escapes, nesting,
// other key spellings (encoding/json matches keys case-insensitively),
// non-ASCII space — is for DecodeRequest.
func (f *fastRequest) scan(line []byte) bool {
	f.line = line
	i := skipJSONSpace(line, 0)
	if i >= len(line) || line[i] != '{' {
		return false
	}
	i = skipJSONSpace(line, i+1)
	var seenID, seenMethod, seenParams, seenRPC bool
	for {
		if i >= len(line) || line[i] != '"' {
			return false
		}
		k0 := i + 1
		k1 := plainStringEnd(line, k0)
		if k1 < 0 {
			return false
		}
		key := line[k0:k1]
		i = skipJSONSpace(line, k1+1)
		if i >= len(line) || line[i] != ':' {
			return false
		}
		i = skipJSONSpace(line, i+1)
		if i >= len(line) {
			return false
		}
		switch string(key) {
		case "id":
			if seenID {
				return false
			}
			seenID = true
			end := scanID(line, i)
			if end < 0 {
				return false
			}
			f.id, i = line[i:end], end
		case "method":
			if seenMethod || line[i] != '"' {
				return false
			}
			seenMethod = true
			end := plainStringEnd(line, i+1)
			if end < 0 || end == i+1 {
				return false
			}
			f.method, i = line[i+1:end], end+1
		case "params":
			if seenParams {
				return false
			}
			seenParams = true
			end := f.scanParams(line, i)
			if end < 0 {
				return false
			}
			f.params, i = line[i:end], end
		case "jsonrpc":
			if seenRPC || line[i] != '"' {
				return false
			}
			seenRPC = true
			end := plainStringEnd(line, i+1)
			if end < 0 {
				return false
			}
			i = end + 1
		default:
			return false
		}
		i = skipJSONSpace(line, i)
		if i >= len(line) {
			return false
		}
		if line[i] == '}' {
			break
		}
		if line[i] != ',' {
			return false
		}
		i = skipJSONSpace(line, i+1)
	}
	return seenMethod && skipJSONSpace(line, i+1) == len(line)
}

// plainStringEnd returns the index of the closing quote of a string whose
// body starts at i, or -1 if the body has escapes, control characters or
// invalid UTF-8 (encoding/json would rewrite those).
func plainStringEnd(b []byte, i int) int {
	from := i
	ascii := true
	for ; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			if !ascii && !utf8.Valid(b[from:i]) {
				return -1
			}
			return i
		case c == '\\' || c < 0x20:
			return -1
		case c >= 0x80:
			ascii = false
		}
	}
	return -1
}

// scanID returns the end of an id value at i: a JSON number, null or a
// plain string; -1 for anything else.
func scanID(b []byte, i int) int {
	switch c := b[i]; {
	case c == '"':
		end := plainStringEnd(b, i+1)
		if end < 0 {
			return -1
		}
		return end + 1
	case c == 'n':
		if len(b)-i >= 4 && string(b[i:i+4]) == "null" {
			return i + 4
		}
		return -1
	case c == '-' || ('0' <= c && c <= '9'):
		return scanNumber(b, i)
	}
	return -1
}

// scanNumber returns the end of the JSON number at i, or -1.
func scanNumber(b []byte, i int) int {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		i++
		d := i
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		if i == d {
			return -1
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d := i
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		if i == d {
			return -1
		}
	}
	return i
}

// scanParams reads an array of at most six plain strings at i and returns
// its end, or -1.
func (f *fastRequest) scanParams(b []byte, i int) int {
	if b[i] != '[' {
		return -1
	}
	i = skipJSONSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1
	}
	for {
		if i >= len(b) || b[i] != '"' || f.n == len(f.fields) {
			return -1
		}
		end := plainStringEnd(b, i+1)
		if end < 0 {
			return -1
		}
		f.fields[f.n] = [2]int{i + 1, end}
		f.n++
		i = skipJSONSpace(b, end+1)
		if i >= len(b) {
			return -1
		}
		if b[i] == ']' {
			return i + 1
		}
		if b[i] != ',' {
			return -1
		}
		i = skipJSONSpace(b, i+1)
	}
}

// NewSubmitRequest is a mining.submit with its parameters already
// parsed: what a Stratum V2 channel hands the pool for each share, with
// no JSON in between.
func NewSubmitRequest(id json.RawMessage, p SubmitParams) *Request {
	return &Request{ID: id, Method: "mining.submit", submit: p, hasSubmit: true}
}
