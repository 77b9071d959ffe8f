package stratum

import (
	"encoding/json"
	"os"
	"testing"
)

type vector struct {
	Name            string          `json:"name"`
	SubscribeResult json.RawMessage `json:"subscribe_result"`
	Notify          json.RawMessage `json:"notify"`
	Submit          json.RawMessage `json:"submit"`
}

// loadVectors reads the shared Stratum test vectors, keyed by name.
func loadVectors(tb testing.TB) map[string]vector {
	tb.Helper()
	raw, err := os.ReadFile("../testdata/stratum.json")
	if err != nil {
		tb.Fatalf("read test vectors: %v", err)
	}
	var file struct {
		Vectors []vector `json:"vectors"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		tb.Fatalf("decode test vectors: %v", err)
	}
	out := make(map[string]vector, len(file.Vectors))
	for _, v := range file.Vectors {
		out[v.Name] = v
	}
	for _, name := range []string{"real-miner-share-regtest", "computed-branch-of-3", "slush-example"} {
		if _, ok := out[name]; !ok {
			tb.Fatalf("test vector %q missing", name)
		}
	}
	return out
}

// compact re-encodes JSON without whitespace, so encodings can be compared.
func compact(tb testing.TB, raw []byte) string {
	tb.Helper()
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		tb.Fatalf("not JSON: %v: %s", err, raw)
	}
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// wantCode asserts err is a *Error with the given code.
func wantCode(tb testing.TB, err error, code int) {
	tb.Helper()
	serr, ok := err.(*Error)
	if !ok {
		tb.Fatalf("error = %T %v, want *Error", err, err)
	}
	if serr.Code != code {
		tb.Fatalf("error code = %d (%s), want %d", serr.Code, serr.Message, code)
	}
	if serr.Message == "" {
		tb.Fatalf("error code %d has no message", code)
	}
}
