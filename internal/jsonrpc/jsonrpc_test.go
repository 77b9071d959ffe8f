package jsonrpc

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestParseURL(t *testing.T) {
	for _, c := range []struct {
		raw, user, pass        string
		endpoint, wantU, wantP string
		bad                    bool
	}{
		{raw: "127.0.0.1:8332", endpoint: "http://127.0.0.1:8332"},
		{raw: "http://u:p@node:8332", endpoint: "http://node:8332", wantU: "u", wantP: "p"},
		{raw: "http://u:p@node:8332", user: "x", pass: "y", endpoint: "http://node:8332", wantU: "x", wantP: "y"},
		{raw: "https://node/wallet/w1", endpoint: "https://node/wallet/w1"},
		{raw: "ftp://node:21", bad: true},
		{raw: "http://", bad: true},
		{raw: "http://[::1", bad: true},
	} {
		ep, u, p, err := ParseURL(c.raw, c.user, c.pass)
		if c.bad {
			if err == nil {
				t.Errorf("%q: accepted as %s", c.raw, ep)
			}
			continue
		}
		if err != nil || ep != c.endpoint || u != c.wantU || p != c.wantP {
			t.Errorf("%q: %q %q %q %v", c.raw, ep, u, p, err)
		}
	}
}

func TestPost(t *testing.T) {
	var got map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, _ := r.BasicAuth()
		if u != "user" || p != "pw" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		b, _ := io.ReadAll(r.Body)
		json.Unmarshal(b, &got)
		switch got["method"] {
		case "ok":
			io.WriteString(w, `{"result":{"a":1},"error":null,"id":7}`)
		case "refused":
			w.WriteHeader(http.StatusInternalServerError) // Bitcoin Core's way
			io.WriteString(w, `{"result":null,"error":{"code":-8,"message":"no"},"id":7}`)
		default:
			io.WriteString(w, `<html>`)
		}
	}))
	defer srv.Close()
	ep := &Endpoint{URL: srv.URL, User: "user", Pass: "pw", Version: "2.0"}
	ctx := context.Background()

	r, err := ep.Post(ctx, srv.Client(), 7, "ok", nil, nil)
	if err != nil || string(r.Result) != `{"a":1}` || r.Error != nil {
		t.Fatalf("ok: %+v %v", r, err)
	}
	if got["jsonrpc"] != "2.0" || got["id"] != float64(7) || got["params"] == nil {
		t.Errorf("request envelope %v", got)
	}
	r, err = ep.Post(ctx, srv.Client(), 8, "refused", []any{1}, nil)
	if err != nil || string(r.Error) != `{"code":-8,"message":"no"}` {
		t.Fatalf("refused: %+v %v", r, err)
	}
	if _, err = ep.Post(ctx, srv.Client(), 9, "garbage", nil, nil); err == nil {
		t.Fatal("undecodable body accepted")
	}
	bad := *ep
	bad.Pass = "wrong"
	if _, err = bad.Post(ctx, srv.Client(), 10, "ok", nil, nil); !errors.Is(err, ErrAuth) {
		t.Fatalf("wrong password: %v", err)
	}
}
