package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/btcsuite/btcd/chainhash/v2"
)

// A witness transaction built by hand (version 2, one input with a
// two-item witness, one P2WPKH output), with its ids computed here from the
// BIP 141 definitions rather than by the code under test: txid hashes the
// serialization without marker, flag and witness; wtxid hashes all of it.
const (
	txVersion  = "02000000"
	txMarker   = "0001"
	txInputs   = "01" + "1111111111111111111111111111111111111111111111111111111111111111" + "00000000" + "00" + "ffffffff"
	txOutputs  = "01" + "00e1f50500000000" + "16" + "0014" + "2222222222222222222222222222222222222222"
	txWitness  = "02" + "03aabbcc" + "02ddee"
	txLocktime = "00000000"
	witnessTx  = txVersion + txMarker + txInputs + txOutputs + txWitness + txLocktime
	strippedTx = txVersion + txInputs + txOutputs + txLocktime
)

// displayHash is SHA-256d of hex data, in display (reversed) order.
func displayHash(t testing.TB, data string) string {
	t.Helper()
	b, err := hex.DecodeString(data)
	if err != nil {
		t.Fatal(err)
	}
	first := sha256.Sum256(b)
	h := sha256.Sum256(first[:])
	slices.Reverse(h[:])
	return hex.EncodeToString(h[:])
}

const corePrevHash = "00000000000000000002a7c4c1e48d76c5a37902165a270156b7a8d72728a054"

// coreTemplate is shaped like Bitcoin Core 27's getblocktemplate answer on
// mainnet; includeTxID false mimics nodes that send only "hash".
func coreTemplate(t testing.TB, includeTxID bool) map[string]any {
	tx := map[string]any{
		"data": witnessTx, "hash": displayHash(t, witnessTx),
		"depends": []int{}, "fee": 2500, "sigops": 1, "weight": 437,
	}
	if includeTxID {
		tx["txid"] = displayHash(t, strippedTx)
	}
	return map[string]any{
		"capabilities":               []string{"proposal"},
		"version":                    536870912,
		"rules":                      []string{"csv", "!segwit", "taproot"},
		"vbavailable":                map[string]any{},
		"vbrequired":                 0,
		"previousblockhash":          corePrevHash,
		"transactions":               []any{tx},
		"coinbaseaux":                map[string]any{},
		"coinbasevalue":              312502500,
		"longpollid":                 corePrevHash + "1234",
		"target":                     "00000000000000000003255b0000000000000000000000000000000000000000",
		"mintime":                    1713571000,
		"mutable":                    []string{"time", "transactions", "prevblock"},
		"noncerange":                 "00000000ffffffff",
		"sigoplimit":                 80000,
		"sizelimit":                  4000000,
		"weightlimit":                4000000,
		"curtime":                    1713572000,
		"bits":                       "1703255b",
		"height":                     840000,
		"default_witness_commitment": "6a24aa21a9ed" + strings.Repeat("ab", 32),
	}
}

// fakeCore answers like Bitcoin Core: JSON-RPC errors with HTTP 500, 401
// without a body for bad credentials.
type fakeCore struct {
	t       *testing.T
	results map[string]any       // method → result
	errors  map[string][2]any    // method → code, message
	seen    []map[string]any     // requests received
	check   func(map[string]any) // extra assertions per request
}

func (f *fakeCore) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if u, p, ok := r.BasicAuth(); !ok || u != "alice" || p != "secret" {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	body, _ := io.ReadAll(r.Body)
	var req map[string]any
	if err := json.Unmarshal(body, &req); err != nil {
		f.t.Errorf("request is not JSON: %q", body)
		return
	}
	f.seen = append(f.seen, req)
	if req["jsonrpc"] != "2.0" {
		f.t.Errorf("request without jsonrpc 2.0: %s", body)
	}
	method, _ := req["method"].(string)
	resp := map[string]any{"id": req["id"], "jsonrpc": "2.0"}
	if e, ok := f.errors[method]; ok {
		resp["error"] = map[string]any{"code": e[0], "message": e[1]}
		w.WriteHeader(http.StatusInternalServerError)
	} else if res, ok := f.results[method]; ok {
		resp["result"] = res
	} else {
		resp["error"] = map[string]any{"code": -32601, "message": "Method not found"}
		w.WriteHeader(http.StatusNotFound)
	}
	json.NewEncoder(w).Encode(resp)
}

func TestCoreTemplate(t *testing.T) {
	for _, withTxID := range []bool{true, false} {
		f := &fakeCore{t: t, results: map[string]any{"getblocktemplate": coreTemplate(t, withTxID)}}
		srv := httptest.NewServer(f)
		defer srv.Close()
		// Credentials from the URL, as --node takes them.
		c, err := New(strings.Replace(srv.URL, "http://", "http://alice:secret@", 1), "", "")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(c.Endpoint(), "secret") {
			t.Fatalf("endpoint %s leaks the password", c.Endpoint())
		}
		tmpl, err := c.GetBlockTemplate(context.Background(), "lp-1")
		if err != nil {
			t.Fatal(err)
		}
		params := f.seen[0]["params"].([]any)[0].(map[string]any)
		if rules := params["rules"].([]any); len(rules) != 1 || rules[0] != "segwit" || params["longpollid"] != "lp-1" {
			t.Errorf("getblocktemplate params %v", params)
		}
		want := &Template{
			Version:           536870912,
			PreviousBlockHash: mustHash(t, corePrevHash),
			Transactions: []TemplateTx{{
				Data: witnessTx, TxID: mustHash(t, displayHash(t, strippedTx)), Hash: mustHash(t, displayHash(t, witnessTx)), Fee: 2500,
			}},
			CoinbaseValue:     312502500,
			Bits:              0x1703255b,
			Height:            840000,
			CurTime:           1713572000,
			MinTime:           1713571000,
			WitnessCommitment: append([]byte{0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed}, bytes.Repeat([]byte{0xab}, 32)...),
			LongPollID:        corePrevHash + "1234",
			Rules:             []string{"csv", "!segwit", "taproot"},
		}
		if g, w := jsonString(t, tmpl), jsonString(t, want); g != w {
			t.Errorf("txid sent %v:\n got %s\nwant %s", withTxID, g, w)
		}
	}
}

func jsonString(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCoreSubmitBlockAndErrors(t *testing.T) {
	ctx := context.Background()
	f := &fakeCore{t: t, results: map[string]any{}, errors: map[string][2]any{}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	c, err := New(srv.URL, "alice", "secret")
	if err != nil {
		t.Fatal(err)
	}

	f.results["submitblock"] = nil
	if v, err := c.SubmitBlock(ctx, "00"); v != "" || err != nil {
		t.Errorf("accepted block: verdict %q err %v", v, err)
	}
	f.results["submitblock"] = "high-hash"
	if v, err := c.SubmitBlock(ctx, "00"); v != "high-hash" || err != nil {
		t.Errorf("high-hash: verdict %q err %v", v, err)
	}
	f.errors["submitblock"] = [2]any{-22, "Block decode failed"}
	if v, err := c.SubmitBlock(ctx, "00"); v != "Block decode failed" || err != nil {
		t.Errorf("undecodable block: verdict %q err %v", v, err)
	}
	f.errors["submitblock"] = [2]any{-28, "Loading block index…"}
	if v, err := c.SubmitBlock(ctx, "00"); v != "" || !IsRPCError(err, CodeWarmingUp) {
		t.Errorf("warming up: verdict %q err %v, want an RPCError", v, err)
	}

	f.errors["getblocktemplate"] = [2]any{-10, "Bitcoin Core is in initial sync and waiting for blocks..."}
	if _, err := c.GetBlockTemplate(ctx, ""); !IsRPCError(err, CodeClientInInitialDL) {
		t.Errorf("getblocktemplate during sync: %v", err)
	}

	// Core dropped `generate`: Generate falls back to generatetoaddress.
	f.results["getnewaddress"] = "bcrt1qxyz"
	f.results["generatetoaddress"] = []string{corePrevHash}
	hashes, err := c.Generate(ctx, 1)
	if err != nil || len(hashes) != 1 || hashes[0] != corePrevHash {
		t.Errorf("Generate via generatetoaddress: %v %v", hashes, err)
	}
	last := f.seen[len(f.seen)-1]
	if last["method"] != "generatetoaddress" || jsonString(t, last["params"]) != `[1,"bcrt1qxyz"]` {
		t.Errorf("last request %v", last)
	}

	bad, err := New(srv.URL, "alice", "wrong")
	if err != nil {
		t.Fatal(err)
	}
	_, err = bad.GetBlockCount(ctx)
	if err == nil || IsRPCError(err, 0) || !strings.Contains(err.Error(), "credentials") {
		t.Errorf("bad credentials: %v, want a transport error naming credentials", err)
	}
}

func TestNormaliseWitnessCommitment(t *testing.T) {
	hash := strings.Repeat("5e", 32)
	full := "6a24aa21a9ed" + hash
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"", "", true},
		{hash, full, true}, // btcd: the bare commitment hash
		{full, full, true}, // Bitcoin Core: the whole output script
		{strings.ToUpper(full), full, true},
		{hash[:62], "", false},             // 31 bytes
		{"6a24aa21a9ee" + hash, "", false}, // wrong commitment header
		{full + "00", "", false},
		{"zz" + hash[2:], "", false},
	} {
		got, err := normaliseWitnessCommitment(tc.in)
		if (err == nil) != tc.ok || hex.EncodeToString(got) != tc.want {
			t.Errorf("normaliseWitnessCommitment(%q) = %x, %v; want %s ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestParseTemplateRejects(t *testing.T) {
	base := coreTemplate(t, true)
	for name, mutate := range map[string]func(m map[string]any){
		"no coinbasevalue": func(m map[string]any) { delete(m, "coinbasevalue") },
		"short prevhash":   func(m map[string]any) { m["previousblockhash"] = "00ff" },
		"bad bits":         func(m map[string]any) { m["bits"] = "xyz" },
		"zero height":      func(m map[string]any) { m["height"] = 0 },
		"tx without data":  func(m map[string]any) { m["transactions"] = []any{map[string]any{"txid": corePrevHash}} },
		"tx bad data":      func(m map[string]any) { m["transactions"] = []any{map[string]any{"data": "0100"}} },
	} {
		m := map[string]any{}
		for k, v := range base {
			m[k] = v
		}
		mutate(m)
		raw, _ := json.Marshal(m)
		if tmpl, err := parseTemplate(raw); err == nil {
			t.Errorf("%s: parsed %+v, want an error", name, tmpl)
		}
	}
}

// mustHash parses a display-order hash the test knows to be good.
func mustHash(t testing.TB, display string) (h chainhash.Hash) {
	var err error
	if h, err = parseHash("hash", display); err != nil {
		t.Fatal(err)
	}
	return h
}

// btcd's template, parsed once into typed fields: bits without leading
// zeros, no target, the bare 32-byte witness commitment, coinbaseaux
// flags as hex.
func TestParseTemplateBtcd(t *testing.T) {
	// btcd formats bits with strconv.FormatInt(bits, 16): no leading zero.
	commitment := strings.Repeat("cd", 32)
	raw := `{"bits":"1d00ffff","curtime":1,"height":1,"previousblockhash":"` + corePrevHash + `","transactions":[],"version":1,"coinbasevalue":1,` +
		`"coinbaseaux":{"flags":"2f503253482f"},"default_witness_commitment":"` + commitment + `"}`
	tmpl, err := parseTemplate([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if tmpl.Bits != 0x1d00ffff || tmpl.PreviousBlockHash.String() != corePrevHash || string(tmpl.CoinbaseFlags) != "/P2SH/" {
		t.Errorf("parsed %+v", tmpl)
	}
	if got := hex.EncodeToString(tmpl.WitnessCommitment); got != "6a24aa21a9ed"+commitment {
		t.Errorf("bare witness commitment normalised to %s", got)
	}
	short := strings.Replace(raw, `"1d00ffff"`, `"3ffffff"`, 1)
	if tmpl, err = parseTemplate([]byte(short)); err != nil || tmpl.Bits != 0x03ffffff {
		t.Errorf("short bits: %+v %v", tmpl, err)
	}
	for name, bad := range map[string]string{
		"bits not hex":     strings.Replace(raw, `"1d00ffff"`, `"1d00fffg"`, 1),
		"bits too long":    strings.Replace(raw, `"1d00ffff"`, `"01d00ffff"`, 1),
		"bits zero":        strings.Replace(raw, `"1d00ffff"`, `"0"`, 1),
		"bits empty":       strings.Replace(raw, `"1d00ffff"`, `""`, 1),
		"bits a number":    strings.Replace(raw, `"1d00ffff"`, `486604799`, 1),
		"bits missing":     strings.Replace(raw, `"bits":"1d00ffff",`, ``, 1),
		"flags not hex":    strings.Replace(raw, `"2f503253482f"`, `"/P2SH/"`, 1),
		"prev hash short":  strings.Replace(raw, corePrevHash, corePrevHash[2:], 1),
		"commitment short": strings.Replace(raw, commitment, commitment[2:], 1),
	} {
		if tmpl, err := parseTemplate([]byte(bad)); err == nil {
			t.Errorf("%s: parsed %+v, want an error", name, tmpl)
		}
	}
}

func FuzzParseTemplate(f *testing.F) {
	for _, withTxID := range []bool{true, false} {
		b, _ := json.Marshal(coreTemplate(f, withTxID))
		f.Add(b)
	}
	f.Add([]byte(`{"bits":"207fffff","curtime":1,"height":2,"previousblockhash":"` + corePrevHash + `","coinbasevalue":5000000000,"default_witness_commitment":"` + strings.Repeat("00", 32) + `"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tmpl, err := parseTemplate(data)
		if err != nil {
			return
		}
		if tmpl.Bits == 0 || tmpl.Height <= 0 || tmpl.CoinbaseValue < 0 {
			t.Fatalf("malformed fields accepted: %+v", tmpl)
		}
		if wc := tmpl.WitnessCommitment; wc != nil && (len(wc) != 38 || !bytes.HasPrefix(wc, witnessCommitmentHeader)) {
			t.Fatalf("witness commitment %x", wc)
		}
		for _, tx := range tmpl.Transactions {
			if tx.Data == "" {
				t.Fatalf("transaction without data: %+v", tx)
			}
		}
	})
}
