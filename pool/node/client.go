// Package node talks JSON-RPC to a bitcoind-compatible node (Bitcoin Core or
// btcd): block templates, block submission, chain queries, and a watcher
// that turns the node's tip changes into fresh templates.
package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashforge/hashforge/internal/jsonrpc"
)

// Timeouts of the two HTTP clients. Ordinary calls are quick on a healthy
// node; submitblock of a full block can take Core a few seconds. Long polls
// are bounded by their context instead.
const (
	callTimeout = 30 * time.Second
	dialTimeout = 5 * time.Second
	// Bitcoin Core drops idle RPC connections after -rpcservertimeout
	// (30 s by default); closing ours first avoids writing a request into
	// a connection the server is closing.
	idleConnTimeout = 15 * time.Second
)

// RPC error codes shared by Bitcoin Core and btcd.
const (
	CodeMethodNotFound       = -32601
	CodeMisc                 = -1
	CodeInvalidParameter     = -8
	CodeBlockNotFound        = -5 // Core: RPC_INVALID_ADDRESS_OR_KEY "Block not found"
	CodeClientNotConnected   = -9
	CodeClientInInitialDL    = -10 // btcd also: tip older than 24 h
	CodeDeserializationError = -22
	CodeVerifyError          = -25
	CodeWarmingUp            = -28
)

// RPCError is an error object returned by the node: the node is reachable
// and refused the request.
type RPCError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (e *RPCError) Error() string { return fmt.Sprintf("node error %d: %s", e.Code, e.Message) }

// Client is a JSON-RPC client for one node. It is safe for concurrent use.
type Client struct {
	ep       jsonrpc.Endpoint
	http     *http.Client
	longPoll *http.Client
	nextID   atomic.Uint64

	chainMu sync.Mutex
	chain   string // cached getblockchaininfo chain name

	// signetRule is set once the node asked for the "signet" rule.
	signetRule atomic.Bool

	// route, when set, makes this a stand-in for whichever node it names
	// at each call (Set.Client): payouts and block recovery take a
	// *Client and must follow the set's active node.
	route func() *Client
}

// New returns a client for the node at rawURL ("http://host:port", or
// "host:port"). Credentials come from user and pass, or, when those are
// empty, from the URL's userinfo.
func New(rawURL, user, pass string) (*Client, error) {
	endpoint, user, pass, err := jsonrpc.ParseURL(rawURL, user, pass)
	if err != nil {
		return nil, fmt.Errorf("parse node URL: %w", err)
	}
	transport := &http.Transport{
		// No Proxy: an HTTP_PROXY meant for the outside world must not
		// sit between the pool and its node.
		DialContext:         (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout: dialTimeout,
		MaxIdleConnsPerHost: 8,
		IdleConnTimeout:     idleConnTimeout,
	}
	return &Client{
		// btcd answers a request without "jsonrpc":"2.0" with an empty body.
		ep:       jsonrpc.Endpoint{URL: endpoint, User: user, Pass: pass, Version: "2.0"},
		http:     &http.Client{Transport: transport, Timeout: callTimeout},
		longPoll: &http.Client{Transport: transport},
	}, nil
}

// Endpoint is the node URL without credentials, fit for logs.
func (c *Client) Endpoint() string {
	if c.route != nil {
		return c.route().Endpoint()
	}
	return c.ep.URL
}

// Call invokes method with params and decodes the result into out (nil to
// discard it). A refusal by the node is returned as *RPCError; anything else
// is a transport failure.
func (c *Client) Call(ctx context.Context, method string, params []any, out any) error {
	return c.call(ctx, c.http, method, params, out)
}

func (c *Client) call(ctx context.Context, hc *http.Client, method string, params []any, out any) error {
	if c.route != nil {
		to := c.route()
		if hc == c.longPoll {
			return to.call(ctx, to.longPoll, method, params, out)
		}
		return to.call(ctx, to.http, method, params, out)
	}
	r, err := c.ep.Post(ctx, hc, c.nextID.Add(1), method, params, func(req *http.Request) {
		// Lets net/http resend the request when a reused keep-alive
		// connection turns out to be closed before any response arrived.
		// Every call here is safe to repeat (a second submitblock is merely
		// a duplicate). The empty value marks the request without sending
		// the header.
		req.Header["X-Idempotency-Key"] = nil
	})
	if errors.Is(err, jsonrpc.ErrAuth) {
		return fmt.Errorf("%s: %w: check the node's RPC credentials and allowed IPs", method, err)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	if r.Error != nil {
		re := &RPCError{}
		if err := json.Unmarshal(r.Error, re); err != nil {
			return fmt.Errorf("%s: HTTP %s with undecodable error %.200q: %w", method, r.Status, r.Error, err)
		}
		return fmt.Errorf("%s: %w", method, re)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(r.Result, out); err != nil {
		return fmt.Errorf("%s: decode result: %w", method, err)
	}
	return nil
}

// IsRPCError reports whether err carries an error object from the node,
// with the given code when code is not 0.
func IsRPCError(err error, code int) bool {
	var re *RPCError
	return errors.As(err, &re) && (code == 0 || re.Code == code)
}

// GetBlockTemplate asks for a segwit block template. With a non-empty
// longPollID it is a BIP 22 long poll: the node answers when the template
// it identified is outdated, or when ctx ends.
//
// On signet the request carries the "signet" rule too, which Bitcoin Core
// requires there (error -8 without it). The client knows the node is on
// signet from its cached chain name (Chain, CheckNetwork), or learns it
// from that very error and asks again at once.
func (c *Client) GetBlockTemplate(ctx context.Context, longPollID string) (*Template, error) {
	hc := c.http
	if longPollID != "" {
		hc = c.longPoll
	}
	var raw json.RawMessage
	err := c.call(ctx, hc, "getblocktemplate", []any{c.templateRequest(longPollID)}, &raw)
	if IsRPCError(err, CodeInvalidParameter) && strings.Contains(err.Error(), "signet rule") && !c.signetRule.Load() {
		c.signetRule.Store(true)
		err = c.call(ctx, hc, "getblocktemplate", []any{c.templateRequest(longPollID)}, &raw)
	}
	if err != nil {
		return nil, err
	}
	t, err := parseTemplate(raw)
	if err != nil {
		return nil, fmt.Errorf("getblocktemplate: %w", err)
	}
	return t, nil
}

// templateRequest is getblocktemplate's template_request object.
func (c *Client) templateRequest(longPollID string) map[string]any {
	rules := []string{"segwit"}
	if c.signetRule.Load() || c.cachedChain() == "signet" {
		rules = append(rules, "signet")
	}
	req := map[string]any{"rules": rules}
	if longPollID != "" {
		req["longpollid"] = longPollID
	}
	return req
}

// SubmitBlock submits a serialized block. verdict is "" when the node
// accepted it, else the node's reason (Core: "duplicate", "high-hash",
// "inconclusive", …; btcd: "rejected: …"). A block the node cannot even
// decode is a verdict too, not an error: err is only for failing to get an
// answer.
func (c *Client) SubmitBlock(ctx context.Context, blockHex string) (verdict string, err error) {
	var result *string
	err = c.Call(ctx, "submitblock", []any{blockHex}, &result)
	var re *RPCError
	if errors.As(err, &re) && (re.Code == CodeDeserializationError || re.Code == CodeVerifyError) {
		if re.Message == "" {
			// "" is the accepted verdict: a refusal without a reason
			// must not read as one.
			return fmt.Sprintf("rejected (error %d)", re.Code), nil
		}
		return re.Message, nil
	}
	if err != nil {
		return "", err
	}
	if result == nil {
		return "", nil
	}
	if *result == "" {
		// An empty string would read as "accepted"; never let a reject
		// look like that.
		return "rejected", nil
	}
	return *result, nil
}

// GetBlockCount returns the height of the node's best block.
func (c *Client) GetBlockCount(ctx context.Context) (int64, error) {
	var n int64
	err := c.Call(ctx, "getblockcount", nil, &n)
	return n, err
}

// GetBestBlockHash returns the hash of the node's best block, display order.
func (c *Client) GetBestBlockHash(ctx context.Context) (string, error) {
	var h string
	err := c.Call(ctx, "getbestblockhash", nil, &h)
	return h, err
}

// GetBlockHash returns the hash of the main-chain block at height.
func (c *Client) GetBlockHash(ctx context.Context, height int64) (string, error) {
	var h string
	err := c.Call(ctx, "getblockhash", []any{height}, &h)
	return h, err
}

// GetBlock decodes getblock at the given verbosity into out: 0 gives the
// raw block hex (a string), 1 a JSON object as BlockInfo describes.
func (c *Client) GetBlock(ctx context.Context, hash string, verbosity int, out any) error {
	return c.Call(ctx, "getblock", []any{hash, verbosity}, out)
}

// BlockInfo is the part of getblock (verbosity 1) that both node families
// return and payouts need.
type BlockInfo struct {
	Hash          string   `json:"hash"`
	Height        int64    `json:"height"`
	Confirmations int64    `json:"confirmations"` // Core: -1 once the block left the main chain
	PreviousHash  string   `json:"previousblockhash"`
	NextHash      string   `json:"nextblockhash"`
	Time          int64    `json:"time"`
	Bits          Bits     `json:"bits"`
	Tx            []string `json:"tx"`
}

// GetBlockInfo returns getblock at verbosity 1.
func (c *Client) GetBlockInfo(ctx context.Context, hash string) (*BlockInfo, error) {
	var b BlockInfo
	if err := c.GetBlock(ctx, hash, 1, &b); err != nil {
		return nil, err
	}
	return &b, nil
}

// Generate mines n blocks on a test network and returns their hashes. btcd
// has `generate` (paying its --miningaddr); Bitcoin Core dropped it for
// `generatetoaddress`, which is used with a fresh wallet address when
// `generate` is unknown.
func (c *Client) Generate(ctx context.Context, n int) ([]string, error) {
	var hashes []string
	err := c.Call(ctx, "generate", []any{n}, &hashes)
	if !IsRPCError(err, CodeMethodNotFound) {
		return hashes, err
	}
	var addr string
	if err := c.Call(ctx, "getnewaddress", nil, &addr); err != nil {
		return nil, fmt.Errorf("generate: no generate RPC and no wallet address for generatetoaddress: %w", err)
	}
	err = c.Call(ctx, "generatetoaddress", []any{n, addr}, &hashes)
	return hashes, err
}
