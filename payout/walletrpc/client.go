// Package walletrpc is a JSON-RPC client for a Bitcoin wallet (Bitcoin
// Core's wallet or btcwallet's legacy RPC): the sendmany, listtransactions
// and gettransaction calls the payout process needs. It implements
// payout.Wallet.
//
// It shares only the transport (internal/jsonrpc) with pool/node.Client:
// that client lets net/http resend a request on a dropped keep-alive
// connection, which is harmless for getblocktemplate and would pay twice
// for sendmany.
package walletrpc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashforge/hashforge/internal/jsonrpc"
	"github.com/hashforge/hashforge/payout"
)

var _ payout.Wallet = (*Client)(nil)

const (
	callTimeout = 2 * time.Minute // sendmany of hundreds of outputs signs for a while
	// listPage is how many listtransactions entries one request reads.
	listPage = 200
)

// Options configure a Client.
type Options struct {
	// Account is sendmany's first parameter: "" for Bitcoin Core (a
	// dummy it insists on), "default" for btcwallet.
	Account string
}

// Client talks to one wallet. It is safe for concurrent use.
type Client struct {
	ep     jsonrpc.Endpoint
	opts   Options
	http   *http.Client
	nextID atomic.Uint64

	mu         sync.Mutex
	noComments bool // the wallet refused sendmany comments once
}

// New returns a client for the wallet at rawURL ("http://host:port" or
// "host:port"); credentials from user/pass or the URL's userinfo.
func New(rawURL, user, pass string, opts Options) (*Client, error) {
	endpoint, user, pass, err := jsonrpc.ParseURL(rawURL, user, pass)
	if err != nil {
		return nil, fmt.Errorf("parse wallet URL: %w", err)
	}
	return &Client{
		ep:   jsonrpc.Endpoint{URL: endpoint, User: user, Pass: pass, Version: "1.0"},
		opts: opts,
		http: &http.Client{
			Timeout: callTimeout,
			Transport: &http.Transport{
				DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
				TLSHandshakeTimeout: 10 * time.Second,
				IdleConnTimeout:     30 * time.Second,
			},
		},
	}, nil
}

// Call invokes a wallet RPC. An error object from the wallet comes back as
// *payout.WalletError (a refusal); a connection that could not be made
// as payout.ErrWalletUnreachable (nothing was sent); anything else means
// the outcome is unknown.
func (c *Client) Call(ctx context.Context, method string, params []any, out any) error {
	r, err := c.ep.Post(ctx, c.http, c.nextID.Add(1), method, params, nil)
	switch {
	case errors.Is(err, jsonrpc.ErrAuth):
		// Refused before the method ran: nothing happened.
		return fmt.Errorf("%s: %w", method, &payout.WalletError{Code: http.StatusUnauthorized,
			Message: err.Error() + ": check the wallet RPC credentials"})
	case err != nil && payout.IsUnreachable(err):
		// No connection was made: the request was never sent.
		return fmt.Errorf("%s: %w: %w", method, payout.ErrWalletUnreachable, err)
	case err != nil:
		return fmt.Errorf("%s: %w", method, err)
	}
	if r.Error != nil {
		we := &payout.WalletError{}
		if err := json.Unmarshal(r.Error, we); err != nil {
			return fmt.Errorf("%s: HTTP %s with undecodable error %.200q: %w", method, r.Status, r.Error, err)
		}
		return fmt.Errorf("%s: %w", method, we)
	}
	if out == nil {
		return nil
	}
	// Amounts stay decimal strings until FormatBTC/ParseBTC: never a float.
	d := json.NewDecoder(bytes.NewReader(r.Result))
	d.UseNumber()
	if err := d.Decode(out); err != nil {
		return fmt.Errorf("%s: decode result: %w", method, err)
	}
	return nil
}

// SendMany pays amounts in one transaction. The comment goes along unless
// the wallet has said it cannot store comments (btcwallet refuses the
// whole call then, which proves nothing was sent, so retrying without it
// is safe); reconciliation then matches batches by their outputs.
func (c *Client) SendMany(ctx context.Context, amounts map[string]int64, comment string) (string, error) {
	if len(amounts) == 0 {
		return "", errors.New("sendmany: no outputs")
	}
	am := make(map[string]json.Number, len(amounts))
	for a, v := range amounts {
		s, err := FormatBTC(v)
		if err != nil {
			return "", fmt.Errorf("sendmany: amount for %s: %w", a, err)
		}
		am[a] = json.Number(s)
	}
	c.mu.Lock()
	withComment := comment != "" && !c.noComments
	c.mu.Unlock()
	for {
		params := []any{c.opts.Account, am, 1}
		if withComment {
			params = append(params, comment)
		}
		var txid string
		err := c.Call(ctx, "sendmany", params, &txid)
		var we *payout.WalletError
		if withComment && errors.As(err, &we) && strings.Contains(strings.ToLower(we.Message), "comments are not") {
			c.mu.Lock()
			c.noComments = true
			c.mu.Unlock()
			withComment = false
			continue
		}
		if err != nil {
			return "", err
		}
		if len(txid) != 64 {
			return "", fmt.Errorf("sendmany: wallet returned txid %q", txid)
		}
		return txid, nil
	}
}

type listEntry struct {
	TxID     string      `json:"txid"`
	Category string      `json:"category"`
	Address  string      `json:"address"`
	Amount   json.Number `json:"amount"`
	Fee      json.Number `json:"fee"`
	Time     int64       `json:"time"`
	Comment  string      `json:"comment"`
	Confirms int64       `json:"confirmations"`
}

// RecentSends pages back through listtransactions (newest first) until it
// passes since, grouping "send" entries by transaction.
func (c *Client) RecentSends(ctx context.Context, since time.Time) ([]payout.WalletTx, error) {
	byID := map[string]*payout.WalletTx{}
	var order []string
	for skip := 0; ; skip += listPage {
		var page []listEntry
		if err := c.Call(ctx, "listtransactions", []any{"*", listPage, skip}, &page); err != nil {
			return nil, err
		}
		older := false
		// Each page lists oldest first; walk it newest first.
		for i := len(page) - 1; i >= 0; i-- {
			e := page[i]
			t := time.Unix(e.Time, 0)
			if t.Before(since) {
				older = true
				continue
			}
			if e.Category != "send" || e.TxID == "" {
				continue
			}
			amt, err := ParseBTC(string(e.Amount))
			if err != nil {
				return nil, fmt.Errorf("listtransactions: tx %s: %w", e.TxID, err)
			}
			tx := byID[e.TxID]
			if tx == nil {
				tx = &payout.WalletTx{TxID: e.TxID, Time: t, Outputs: map[string]int64{}, Confirms: e.Confirms}
				byID[e.TxID] = tx
				order = append(order, e.TxID)
			}
			tx.Outputs[e.Address] += -amt // sends are negative
			if e.Comment != "" {
				tx.Comment = e.Comment
			}
			if e.Fee != "" {
				if fee, err := ParseBTC(string(e.Fee)); err == nil {
					tx.Fee = abs(fee)
				}
			}
		}
		if older || len(page) < listPage {
			break
		}
	}
	out := make([]payout.WalletTx, 0, len(order))
	for _, id := range order {
		out = append(out, *byID[id])
	}
	return out, nil
}

// rpcNoTxInfo is gettransaction's error code for a transaction the wallet
// does not know: RPC_INVALID_ADDRESS_OR_KEY in Bitcoin Core ("Invalid or
// non-wallet transaction id"), ErrRPCNoTxInfo in btcwallet.
const rpcNoTxInfo = -5

// Transaction returns confirmations and fee of a wallet transaction; an
// error wrapping payout.ErrTxNotFound when the wallet does not know it.
// Confirmations are negative for a transaction that conflicts with one
// in the main chain (Bitcoin Core).
func (c *Client) Transaction(ctx context.Context, txid string) (payout.WalletTx, error) {
	var r struct {
		TxID     string      `json:"txid"`
		Confirms int64       `json:"confirmations"`
		Fee      json.Number `json:"fee"`
		Time     int64       `json:"time"`
		Comment  string      `json:"comment"`
	}
	if err := c.Call(ctx, "gettransaction", []any{txid}, &r); err != nil {
		var we *payout.WalletError
		if errors.As(err, &we) && we.Code == rpcNoTxInfo {
			return payout.WalletTx{}, fmt.Errorf("%w: %w", payout.ErrTxNotFound, err)
		}
		return payout.WalletTx{}, err
	}
	tx := payout.WalletTx{TxID: r.TxID, Confirms: r.Confirms, Time: time.Unix(r.Time, 0), Comment: r.Comment}
	if r.Fee != "" {
		fee, err := ParseBTC(string(r.Fee))
		if err != nil {
			return payout.WalletTx{}, fmt.Errorf("gettransaction %s: fee: %w", txid, err)
		}
		tx.Fee = abs(fee)
	}
	return tx, nil
}

// NewAddress returns a fresh receiving address of the wallet.
func (c *Client) NewAddress(ctx context.Context) (string, error) {
	var a string
	err := c.Call(ctx, "getnewaddress", nil, &a)
	return a, err
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

const satPerBTC = 100_000_000

// Bounds of an amount as a wallet writes it: 21e6 BTC to 8 decimals is 17
// characters; exponents beyond ±30 cannot give a satoshi amount in range.
const (
	maxAmountLen = 64
	maxAmountExp = 30
)

// FormatBTC writes satoshis as an exact BTC decimal ("1.23456789"), the
// form wallets take amounts in. No float ever holds the value.
func FormatBTC(sat int64) (string, error) {
	if sat < 0 || sat > payout.MaxMoney {
		return "", fmt.Errorf("amount %d sat outside 0..%d", sat, int64(payout.MaxMoney))
	}
	return fmt.Sprintf("%d.%08d", sat/satPerBTC, sat%satPerBTC), nil
}

// ParseBTC reads a BTC decimal as JSON carries it ("-1.5", "2.61e-06")
// into satoshis, exactly; a value with a fraction of a satoshi is an error.
func ParseBTC(s string) (int64, error) {
	// A wallet's answer is network input: bound it before big.Rat, which
	// would happily expand "1e999999999".
	if len(s) > maxAmountLen {
		return 0, fmt.Errorf("amount %.40q… is too long", s)
	}
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		if e, err := strconv.Atoi(s[i+1:]); err != nil || e < -maxAmountExp || e > maxAmountExp {
			return 0, fmt.Errorf("amount %q: exponent out of range", s)
		}
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return 0, fmt.Errorf("amount %q is not a number", s)
	}
	r.Mul(r, big.NewRat(satPerBTC, 1))
	if !r.IsInt() {
		return 0, fmt.Errorf("amount %q has a fraction of a satoshi", s)
	}
	n := r.Num()
	if !n.IsInt64() || abs(n.Int64()) > payout.MaxMoney {
		return 0, fmt.Errorf("amount %q out of range", s)
	}
	return n.Int64(), nil
}
