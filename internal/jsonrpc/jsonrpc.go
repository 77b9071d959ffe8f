// Package jsonrpc is the HTTP transport of bitcoind-style JSON-RPC, which
// nodes (Bitcoin Core, btcd) and wallets (Core, btcwallet) all speak: one
// POST per call, HTTP basic auth, a {result, error, id} envelope. What the
// result and the error object mean is the caller's business (pool/node,
// payout/walletrpc, internal/devstack), so both come back undecoded.
package jsonrpc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// MaxResponse bounds a reply body: a 4 MWU block template as hex, with room
// to spare.
const MaxResponse = 64 << 20

// ParseURL accepts "http(s)://[user:pass@]host:port" or a bare "host:port"
// and returns the URL without credentials (fit for logs) and the
// credentials to use: user and pass when given, else the URL's userinfo.
func ParseURL(rawURL, user, pass string) (endpoint, u, p string, err error) {
	if !strings.Contains(rawURL, "://") {
		rawURL = "http://" + rawURL
	}
	parsed, err := url.Parse(rawURL)
	if err != nil {
		return "", "", "", err
	}
	if parsed.Scheme != "http" && parsed.Scheme != "https" {
		return "", "", "", fmt.Errorf("scheme %q, want http or https", parsed.Scheme)
	}
	if parsed.Host == "" {
		return "", "", "", errors.New("no host")
	}
	if parsed.User != nil {
		if user == "" {
			user = parsed.User.Username()
		}
		if pw, ok := parsed.User.Password(); ok && pass == "" {
			pass = pw
		}
		parsed.User = nil
	}
	return parsed.String(), user, pass, nil
}

// Endpoint is where calls go and how they authenticate.
type Endpoint struct {
	URL, User, Pass string
	// Version is the envelope's "jsonrpc" member. btcd answers a request
	// without "2.0" with an empty body; wallets take "1.0".
	Version string
}

// Reply is a decoded envelope. Error is nil when the server sent none (or
// null).
type Reply struct {
	Status string // the HTTP status line, for messages
	Result json.RawMessage
	Error  json.RawMessage
}

// ErrAuth is returned (wrapped, with the HTTP status) when the server
// refused the credentials: the method did not run.
var ErrAuth = errors.New("credentials refused")

// Post makes one call with hc. An error is a transport failure (as returned
// by hc, so callers can tell a refused connection), ErrAuth, or a body that
// is not an envelope; a server's error object is in the Reply. Bitcoin
// Core sends its RPC errors with HTTP 404 or 500 and a JSON body, so the
// body decides, not the status. prepare, when not nil, adjusts the request.
func (e *Endpoint) Post(ctx context.Context, hc *http.Client, id uint64, method string, params []any, prepare func(*http.Request)) (*Reply, error) {
	if params == nil {
		params = []any{}
	}
	body, err := json.Marshal(struct {
		JSONRPC string `json:"jsonrpc"`
		ID      uint64 `json:"id"`
		Method  string `json:"method"`
		Params  []any  `json:"params"`
	}{e.Version, id, method, params})
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.URL, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if e.User != "" || e.Pass != "" {
		req.SetBasicAuth(e.User, e.Pass)
	}
	if prepare != nil {
		prepare(req)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponse))
	if err != nil {
		return nil, fmt.Errorf("read response: %w", err)
	}
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		return nil, fmt.Errorf("HTTP %s: %w", resp.Status, ErrAuth)
	}
	var r struct {
		Result json.RawMessage `json:"result"`
		Error  json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("HTTP %s with undecodable body %.200q: %w", resp.Status, data, err)
	}
	rep := &Reply{Status: resp.Status, Result: r.Result}
	if len(r.Error) > 0 && string(r.Error) != "null" {
		rep.Error = r.Error
	}
	return rep, nil
}
