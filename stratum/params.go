package stratum

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"math"
	"strconv"
	"unicode/utf8"
)

// SubmitParams are the parameters of mining.submit.
type SubmitParams struct {
	User           string
	JobID          string
	Extranonce2    []byte
	NTime          uint32
	Nonce          uint32
	VersionBits    uint32
	HasVersionBits bool
}

// ParseSubmit parses [user, job_id, extranonce2, ntime, nonce] with an
// optional sixth element, the BIP 310 version bits.
func ParseSubmit(params json.RawMessage) (SubmitParams, error) {
	var buf [6]string
	if fields, ok := splitPlainStrings(params, buf[:0]); ok && (len(fields) == 5 || len(fields) == 6) {
		return submitFromStrings(fields)
	}
	return parseSubmitSlow(params)
}

// submitFromStrings finishes ParseSubmit on the fast path.
func submitFromStrings(f []string) (SubmitParams, error) {
	p := SubmitParams{User: f[0], JobID: f[1]}
	var err error
	if p.Extranonce2, err = hex.DecodeString(f[2]); err != nil {
		return p, Errorf(CodeOther, "mining.submit: extranonce2: want hex of whole bytes")
	}
	if p.NTime, err = hexUint32("mining.submit", "ntime", f[3]); err != nil {
		return p, err
	}
	if p.Nonce, err = hexUint32("mining.submit", "nonce", f[4]); err != nil {
		return p, err
	}
	if len(f) == 6 {
		if p.VersionBits, err = hexUint32("mining.submit", "version bits", f[5]); err != nil {
			return p, err
		}
		p.HasVersionBits = true
	}
	return p, nil
}

// parseSubmitSlow handles what the fast path declines: escaped strings,
// and every malformed input, with a precise error.
func parseSubmitSlow(params json.RawMessage) (SubmitParams, error) {
	var p SubmitParams
	parts, err := splitArray("mining.submit", params)
	if err != nil {
		return p, err
	}
	if len(parts) != 5 && len(parts) != 6 {
		return p, Errorf(CodeOther, "mining.submit: want 5 or 6 params, got %d", len(parts))
	}
	if p.User, err = stringParam("mining.submit", "worker name", parts[0]); err != nil {
		return p, err
	}
	if p.JobID, err = stringParam("mining.submit", "job id", parts[1]); err != nil {
		return p, err
	}
	en2, err := stringParam("mining.submit", "extranonce2", parts[2])
	if err != nil {
		return p, err
	}
	if p.Extranonce2, err = hex.DecodeString(en2); err != nil {
		return p, Errorf(CodeOther, "mining.submit: extranonce2: want hex of whole bytes")
	}
	if p.NTime, err = uint32Param("mining.submit", "ntime", parts[3]); err != nil {
		return p, err
	}
	if p.Nonce, err = uint32Param("mining.submit", "nonce", parts[4]); err != nil {
		return p, err
	}
	if len(parts) == 6 {
		if p.VersionBits, err = uint32Param("mining.submit", "version bits", parts[5]); err != nil {
			return p, err
		}
		p.HasVersionBits = true
	}
	return p, nil
}

// SubscribeParams are the parameters of mining.subscribe. Both are optional.
type SubscribeParams struct {
	UserAgent string
	SessionID string
}

// ParseSubscribe parses [], null, [user_agent] or [user_agent, session_id].
// Further elements (some firmware sends the pool host and port) are ignored,
// and null in either slot means absent.
func ParseSubscribe(params json.RawMessage) (SubscribeParams, error) {
	var p SubscribeParams
	parts, err := splitArray("mining.subscribe", params)
	if err != nil {
		return p, err
	}
	if len(parts) > 0 && !isNull(parts[0]) {
		if p.UserAgent, err = stringParam("mining.subscribe", "user agent", parts[0]); err != nil {
			return p, err
		}
	}
	if len(parts) > 1 && !isNull(parts[1]) {
		if p.SessionID, err = stringParam("mining.subscribe", "session id", parts[1]); err != nil {
			return p, err
		}
	}
	return p, nil
}

// AuthorizeParams are the parameters of mining.authorize.
type AuthorizeParams struct {
	User     string
	Password string
}

// ParseAuthorize parses [user] or [user, password]; a null password is empty.
func ParseAuthorize(params json.RawMessage) (AuthorizeParams, error) {
	var p AuthorizeParams
	parts, err := splitArray("mining.authorize", params)
	if err != nil {
		return p, err
	}
	if len(parts) != 1 && len(parts) != 2 {
		return p, Errorf(CodeOther, "mining.authorize: want 1 or 2 params, got %d", len(parts))
	}
	if p.User, err = stringParam("mining.authorize", "user", parts[0]); err != nil {
		return p, err
	}
	if len(parts) == 2 && !isNull(parts[1]) {
		if p.Password, err = stringParam("mining.authorize", "password", parts[1]); err != nil {
			return p, err
		}
	}
	return p, nil
}

// ConfigureParams are the parameters of mining.configure (BIP 310).
// Raw holds the whole extension-parameter object so extensions this package
// does not interpret (subscribe-extranonce, info, ...) stay reachable.
type ConfigureParams struct {
	Extensions                []string
	VersionRollingMask        uint32
	HasVersionRolling         bool
	VersionRollingMinBitCount int
	MinimumDifficulty         float64
	HasMinimumDifficulty      bool
	Raw                       map[string]json.RawMessage
}

// BIP 310 extension names.
const (
	ExtVersionRolling    = "version-rolling"
	ExtMinimumDifficulty = "minimum-difficulty"
)

// ParseConfigure parses [[extension, ...], {"name.key": value, ...}].
// Only parameters of requested extensions are interpreted. A version-rolling
// request without a mask means the miner accepts any mask (0xffffffff) and a
// missing min-bit-count means 0: some firmware omits them, and the pool
// intersects with its own mask anyway.
func ParseConfigure(params json.RawMessage) (ConfigureParams, error) {
	const m = "mining.configure"
	var p ConfigureParams
	parts, err := splitArray(m, params)
	if err != nil {
		return p, err
	}
	if len(parts) != 1 && len(parts) != 2 {
		return p, Errorf(CodeOther, "%s: want 2 params, got %d", m, len(parts))
	}
	exts, err := splitArray(m, parts[0])
	if err != nil || len(parts[0]) == 0 || isNull(parts[0]) {
		return p, Errorf(CodeOther, "%s: extensions must be an array of strings", m)
	}
	p.Extensions = make([]string, 0, len(exts))
	for _, raw := range exts {
		name, ok := rawString(raw)
		if !ok {
			return p, Errorf(CodeOther, "%s: extensions must be an array of strings", m)
		}
		p.Extensions = append(p.Extensions, name)
	}
	p.Raw = map[string]json.RawMessage{}
	if len(parts) == 2 && !isNull(parts[1]) {
		if b := bytes.TrimSpace(parts[1]); len(b) == 0 || b[0] != '{' {
			return p, Errorf(CodeOther, "%s: extension parameters must be an object", m)
		}
		if err := json.Unmarshal(parts[1], &p.Raw); err != nil {
			return p, Errorf(CodeOther, "%s: extension parameters must be an object", m)
		}
	}
	for _, ext := range p.Extensions {
		switch ext {
		case ExtVersionRolling:
			if err := p.parseVersionRolling(); err != nil {
				return p, err
			}
		case ExtMinimumDifficulty:
			raw, ok := p.Raw["minimum-difficulty.value"]
			if !ok {
				return p, Errorf(CodeOther, "%s: minimum-difficulty.value missing", m)
			}
			d, err := positiveNumber(raw)
			if err != nil {
				return p, Errorf(CodeOther, "%s: minimum-difficulty.value: %s", m, err.Message)
			}
			p.MinimumDifficulty, p.HasMinimumDifficulty = d, true
		}
	}
	return p, nil
}

func (p *ConfigureParams) parseVersionRolling() error {
	const m = "mining.configure"
	p.HasVersionRolling = true
	p.VersionRollingMask = math.MaxUint32
	if raw, ok := p.Raw["version-rolling.mask"]; ok {
		s, ok := rawString(raw)
		// The mask is a number written in hex, not a fixed-width field, so
		// unpadded values are fine; more than 8 digits cannot be a uint32.
		if !ok || len(s) == 0 || len(s) > 8 {
			return Errorf(CodeOther, "%s: version-rolling.mask: want up to 8 hex digits", m)
		}
		v, err := strconv.ParseUint(s, 16, 32)
		if err != nil {
			return Errorf(CodeOther, "%s: version-rolling.mask: want up to 8 hex digits", m)
		}
		p.VersionRollingMask = uint32(v)
	}
	if raw, ok := p.Raw["version-rolling.min-bit-count"]; ok {
		var f float64
		if err := json.Unmarshal(raw, &f); err != nil || f != math.Trunc(f) || f < 0 || f > 32 {
			return Errorf(CodeOther, "%s: version-rolling.min-bit-count: want an integer 0..32", m)
		}
		p.VersionRollingMinBitCount = int(f)
	}
	return nil
}

// ParseSuggestDifficulty parses [difficulty]. The difficulty may be a JSON
// number or a numeric string (both are seen in the wild) and must be a
// finite number above zero.
func ParseSuggestDifficulty(params json.RawMessage) (float64, error) {
	parts, err := splitArray("mining.suggest_difficulty", params)
	if err != nil {
		return 0, err
	}
	if len(parts) != 1 {
		return 0, Errorf(CodeOther, "mining.suggest_difficulty: want 1 param, got %d", len(parts))
	}
	d, perr := positiveNumber(parts[0])
	if perr != nil {
		return 0, Errorf(CodeOther, "mining.suggest_difficulty: %s", perr.Message)
	}
	return d, nil
}

func positiveNumber(raw json.RawMessage) (float64, *Error) {
	raw = bytes.TrimSpace(raw)
	text := string(raw)
	if s, ok := rawString(raw); ok {
		text = s
	} else if len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
		return 0, Errorf(CodeOther, "difficulty must be a number")
	}
	d, err := strconv.ParseFloat(text, 64)
	if err != nil || math.IsNaN(d) || math.IsInf(d, 0) {
		return 0, Errorf(CodeOther, "difficulty must be a finite number")
	}
	if d <= 0 {
		return 0, Errorf(CodeOther, "difficulty must be above zero")
	}
	return d, nil
}

// NotifyParams are the nine parameters of mining.notify. Hex fields are kept
// as the exact strings sent: their byte order is a matter for the job code.
type NotifyParams struct {
	JobID        string
	PrevHash     string
	Coinb1       string
	Coinb2       string
	MerkleBranch []string
	Version      string
	NBits        string
	NTime        string
	CleanJobs    bool
}

// MarshalJSON encodes the nine-element array.
func (n NotifyParams) MarshalJSON() ([]byte, error) {
	return n.appendJSON(make([]byte, 0, n.encodedSizeHint())), nil
}

func (n *NotifyParams) encodedSizeHint() int {
	size := 64 + len(n.JobID) + len(n.PrevHash) + len(n.Coinb1) + len(n.Coinb2) +
		len(n.Version) + len(n.NBits) + len(n.NTime)
	for _, b := range n.MerkleBranch {
		size += len(b) + 3
	}
	return size
}

func (n *NotifyParams) appendJSON(dst []byte) []byte {
	dst = append(dst, '[')
	for _, s := range [...]string{n.JobID, n.PrevHash, n.Coinb1, n.Coinb2} {
		dst = appendJSONString(dst, s)
		dst = append(dst, ',')
	}
	dst = append(dst, '[')
	for i, b := range n.MerkleBranch {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, b)
	}
	dst = append(dst, "],"...)
	for _, s := range [...]string{n.Version, n.NBits, n.NTime} {
		dst = appendJSONString(dst, s)
		dst = append(dst, ',')
	}
	dst = strconv.AppendBool(dst, n.CleanJobs)
	return append(dst, ']')
}

// UnmarshalJSON decodes the nine-element array. Extra trailing elements,
// which some pools append, are ignored.
func (n *NotifyParams) UnmarshalJSON(data []byte) error {
	p, err := ParseNotify(data)
	if err != nil {
		return err
	}
	*n = p
	return nil
}

// ParseNotify parses mining.notify params; it is NotifyParams.UnmarshalJSON
// returning a value.
func ParseNotify(params json.RawMessage) (NotifyParams, error) {
	const m = "mining.notify"
	var n NotifyParams
	parts, err := splitArray(m, params)
	if err != nil {
		return n, err
	}
	if len(parts) < 9 {
		return n, Errorf(CodeOther, "%s: want 9 params, got %d", m, len(parts))
	}
	names := [...]string{"job id", "prevhash", "coinb1", "coinb2"}
	dsts := [...]*string{&n.JobID, &n.PrevHash, &n.Coinb1, &n.Coinb2}
	for i := range dsts {
		if *dsts[i], err = stringParam(m, names[i], parts[i]); err != nil {
			return n, err
		}
	}
	branch, err := splitArray(m, parts[4])
	if err != nil || isNull(parts[4]) {
		return n, Errorf(CodeOther, "%s: merkle branch must be an array of strings", m)
	}
	n.MerkleBranch = make([]string, len(branch))
	for i, raw := range branch {
		var ok bool
		if n.MerkleBranch[i], ok = rawString(raw); !ok {
			return n, Errorf(CodeOther, "%s: merkle branch must be an array of strings", m)
		}
	}
	names2 := [...]string{"version", "nbits", "ntime"}
	dsts2 := [...]*string{&n.Version, &n.NBits, &n.NTime}
	for i := range dsts2 {
		if *dsts2[i], err = stringParam(m, names2[i], parts[5+i]); err != nil {
			return n, err
		}
	}
	if err := json.Unmarshal(parts[8], &n.CleanJobs); err != nil || isNull(parts[8]) {
		return n, Errorf(CodeOther, "%s: clean_jobs must be a boolean", m)
	}
	return n, nil
}

// SubscribeResult builds the mining.subscribe result:
// [[["mining.set_difficulty", sid], ["mining.notify", sid]], extranonce1, extranonce2_size].
func SubscribeResult(sessionID, extranonce1Hex string, extranonce2Size int) any {
	return []any{
		[][2]string{{"mining.set_difficulty", sessionID}, {"mining.notify", sessionID}},
		extranonce1Hex,
		extranonce2Size,
	}
}

// SubscribeReply is what a client needs from a mining.subscribe result.
type SubscribeReply struct {
	SessionID       string
	Extranonce1     string
	Extranonce2Size int
}

// maxExtranonce2Size and maxExtranonce1Size bound what a client will
// accept: the coinbase scriptSig is at most 100 bytes, so anything larger is
// a broken pool.
const (
	maxExtranonce2Size = 32
	maxExtranonce1Size = 32
)

// ParseSubscribeResult parses the result of mining.subscribe. The
// subscription list varies between pools (a list of pairs, a single bare
// pair, an empty list or null); the session id is taken from the
// mining.notify subscription when there is one, else from the first.
func ParseSubscribeResult(result json.RawMessage) (SubscribeReply, error) {
	const m = "mining.subscribe result"
	var r SubscribeReply
	parts, err := splitArray(m, result)
	if err != nil {
		return r, err
	}
	if len(parts) < 3 {
		return r, Errorf(CodeOther, "%s: want 3 elements, got %d", m, len(parts))
	}
	if r.SessionID, err = subscriptionID(parts[0]); err != nil {
		return r, err
	}
	if r.Extranonce1, err = stringParam(m, "extranonce1", parts[1]); err != nil {
		return r, err
	}
	if _, err := hex.DecodeString(r.Extranonce1); err != nil || len(r.Extranonce1) > 2*maxExtranonce1Size {
		return r, Errorf(CodeOther, "%s: extranonce1: want hex of at most %d whole bytes", m, maxExtranonce1Size)
	}
	var size float64
	if err := json.Unmarshal(parts[2], &size); err != nil || isNull(parts[2]) ||
		size != math.Trunc(size) || size < 0 || size > maxExtranonce2Size {
		return r, Errorf(CodeOther, "%s: extranonce2_size: want an integer 0..%d", m, maxExtranonce2Size)
	}
	r.Extranonce2Size = int(size)
	return r, nil
}

func subscriptionID(raw json.RawMessage) (string, error) {
	const m = "mining.subscribe result"
	if isNull(raw) {
		return "", nil
	}
	subs, err := splitArray(m, raw)
	if err != nil {
		return "", Errorf(CodeOther, "%s: subscriptions must be an array", m)
	}
	// A bare ["mining.notify", "id"] pair instead of a list of pairs.
	if len(subs) == 2 {
		if _, ok := rawString(subs[0]); ok {
			id, ok := rawString(subs[1])
			if !ok {
				return "", Errorf(CodeOther, "%s: subscription id must be a string", m)
			}
			return id, nil
		}
	}
	var first string
	for i, sub := range subs {
		pair, err := splitArray(m, sub)
		if err != nil || len(pair) < 2 {
			return "", Errorf(CodeOther, "%s: subscription must be a [method, id] pair", m)
		}
		method, ok1 := rawString(pair[0])
		id, ok2 := rawString(pair[1])
		if !ok1 || !ok2 {
			return "", Errorf(CodeOther, "%s: subscription must be a [method, id] pair of strings", m)
		}
		if method == "mining.notify" {
			return id, nil
		}
		if i == 0 {
			first = id
		}
	}
	return first, nil
}

// splitArray decodes a JSON array into its raw elements; null and absent
// decode to no elements, any other non-array is an error.
func splitArray(method string, raw json.RawMessage) ([]json.RawMessage, error) {
	b := bytes.TrimSpace(raw)
	if len(b) == 0 || isNull(b) {
		return nil, nil
	}
	if b[0] != '[' {
		return nil, Errorf(CodeOther, "%s: params must be an array", method)
	}
	var parts []json.RawMessage
	if err := json.Unmarshal(b, &parts); err != nil {
		return nil, Errorf(CodeOther, "%s: params must be a valid JSON array", method)
	}
	return parts, nil
}

func stringParam(method, name string, raw json.RawMessage) (string, error) {
	s, ok := rawString(raw)
	if !ok {
		return "", Errorf(CodeOther, "%s: %s must be a string", method, name)
	}
	return s, nil
}

// uint32Param parses exactly eight hex digits of a big-endian uint32, the
// form every real miner sends for ntime, nonce and version bits. Shorter
// strings are refused rather than zero-padded: padding would silently
// accept a malformed share under a different header.
func uint32Param(method, name string, raw json.RawMessage) (uint32, error) {
	s, ok := rawString(raw)
	if !ok {
		return 0, Errorf(CodeOther, "%s: %s must be a string", method, name)
	}
	return hexUint32(method, name, s)
}

func hexUint32(method, name, s string) (uint32, error) {
	if len(s) != 8 {
		return 0, Errorf(CodeOther, "%s: %s: want 8 hex digits, got %d characters", method, name, len(s))
	}
	var v uint32
	for i := 0; i < 8; i++ {
		d := unhex(s[i])
		if d > 15 {
			return 0, Errorf(CodeOther, "%s: %s: want 8 hex digits", method, name)
		}
		v = v<<4 | uint32(d)
	}
	return v, nil
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10
	}
	return 0xff
}

// splitPlainStrings is the fast path for the params of mining.submit, the
// hottest message a pool parses: a JSON array whose elements are all strings
// without escapes. It declines (ok false) anything else, including invalid
// JSON, and the caller falls back to encoding/json, so it never has to
// decide a hard case. The strings share one allocation.
func splitPlainStrings(b []byte, dst []string) ([]string, bool) {
	i := skipJSONSpace(b, 0)
	if i >= len(b) || b[i] != '[' {
		return nil, false
	}
	type span struct{ from, to int }
	var spans [8]span
	n := 0
	i = skipJSONSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return dst, skipJSONSpace(b, i+1) == len(b)
	}
	for {
		if i >= len(b) || b[i] != '"' || n == len(spans) {
			return nil, false
		}
		j := i + 1
		for j < len(b) && b[j] != '"' {
			if c := b[j]; c == '\\' || c < 0x20 {
				return nil, false
			}
			j++
		}
		if j >= len(b) || !utf8.Valid(b[i+1:j]) {
			return nil, false
		}
		spans[n] = span{i + 1, j}
		n++
		i = skipJSONSpace(b, j+1)
		if i >= len(b) {
			return nil, false
		}
		if b[i] == ']' {
			if skipJSONSpace(b, i+1) != len(b) {
				return nil, false
			}
			break
		}
		if b[i] != ',' {
			return nil, false
		}
		i = skipJSONSpace(b, i+1)
	}
	all := string(b)
	for _, sp := range spans[:n] {
		dst = append(dst, all[sp.from:sp.to])
	}
	return dst, true
}

func skipJSONSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}
