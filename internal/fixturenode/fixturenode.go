// Package fixturenode is a stand-in for a mainnet bitcoind that the pool
// cannot tell from one at work: it answers the JSON-RPC calls `hashforge
// serve` makes with mainnet-like block templates (mainnet bits, about
// 3,000 segwit transactions, so the merkle branch has its real length of
// 12, and a correct witness commitment), moves to a new previous block on
// a timer so that clean notifies fan out, holds BIP 22 long polls until
// then, and checks submitted blocks as far as a node can without a UTXO
// set (proof of work, merkle root, coinbase height, amount and witness
// commitment).
//
// It exists for load tests of `hashforge dev --node fixture`: on regtest
// nearly every share is a block. It proves nothing about consensus;
// correctness is tested against a real btcd.
package fixturenode

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/btcsuite/btcd/chainhash/v2"
	"github.com/btcsuite/btcd/wire/v2"
)

// Defaults of Options.
const (
	// DefaultBits is mainnet's compact target around height 935,700
	// (difficulty 125.86 T): no share of a load test is a block.
	DefaultBits = 0x17023c7e
	// DefaultHeight is the first template's height: in the 3.125 BTC
	// subsidy era, as mainnet is.
	DefaultHeight = 925_000
	// DefaultTransactions gives 3,001 leaves with the coinbase: a merkle
	// branch of 12, as a full mainnet block has.
	DefaultTransactions = 3000
	// DefaultBlockInterval is how often the previous block changes.
	DefaultBlockInterval = 10 * time.Second
)

// blockVersion is the template's version: BIP 9 top bits, no signalling.
const blockVersion = 0x20000000

// keepBlocks is how many of the newest headers the node answers for: over
// a day's at a 10 s interval, and memory stays bounded in a long load test.
const keepBlocks = 10_000

// maxRequest bounds a request body: a 4 MWU block is at most 8 MB of hex.
const maxRequest = 32 << 20

// Options configure a Node. Zero values take the defaults.
type Options struct {
	// PortHint is a port on 127.0.0.1 to take if it is free; else the
	// kernel picks one.
	PortHint   int
	User, Pass string // basic auth; Pass is random when empty, User "hashforge"
	// BlockInterval is how often a new previous block arrives.
	BlockInterval time.Duration
	// Bits is the templates' compact target. Tests set an easy one to
	// have a block accepted; anything else should keep mainnet's.
	Bits         uint32
	Height       int64 // the first template's height
	Transactions int   // per template
	Logger       *slog.Logger
}

// Node is a running fixture node.
type Node struct {
	// Host is 127.0.0.1:port; User and Pass its credentials.
	Host, User, Pass string

	opts Options
	log  *slog.Logger
	srv  *http.Server
	done chan struct{} // closed by Stop: ends long polls and the block timer
	wg   sync.WaitGroup

	advanceMu sync.Mutex    // serialises tip changes (timer and submitblock)
	reset     chan struct{} // an accepted block restarts the block timer

	mu       sync.Mutex
	tip      *blockEntry
	byHash   map[chainhash.Hash]*blockEntry
	byHeight map[int64]*blockEntry
	tmpl     *template
	changed  chan struct{} // closed when the tip changes: wakes long polls
	seq      uint64
	accepted int
}

// blockEntry is a block of the fixture's chain: its header only, made up
// by the timer or submitted and accepted.
type blockEntry struct {
	hash      chainhash.Hash
	height    int64
	header    wire.BlockHeader
	submitted bool
	ntx       int
	// coinbase is the coinbase transaction of a submitted block, for
	// getblock at verbosity 0 (a pool reads it to recognise its own
	// blocks); made-up blocks get a made-up one.
	coinbase *wire.MsgTx
}

// Start listens and serves until Stop. The chain starts with one made-up
// block at opts.Height-1. ctx only carries values to the requests: the
// node stops at Stop, after the caller has stopped what uses it.
func Start(ctx context.Context, opts Options) (*Node, error) {
	if opts.BlockInterval <= 0 {
		opts.BlockInterval = DefaultBlockInterval
	}
	if opts.Bits == 0 {
		opts.Bits = DefaultBits
	}
	if opts.Height <= 0 {
		opts.Height = DefaultHeight
	}
	if opts.Transactions <= 0 {
		opts.Transactions = DefaultTransactions
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.User == "" {
		opts.User = "hashforge"
	}
	if opts.Pass == "" {
		opts.Pass = rand.Text()
	}
	n := &Node{
		User: opts.User, Pass: opts.Pass,
		opts: opts, log: opts.Logger,
		done:     make(chan struct{}),
		reset:    make(chan struct{}, 1),
		byHash:   map[chainhash.Hash]*blockEntry{},
		byHeight: map[int64]*blockEntry{},
		changed:  make(chan struct{}),
	}
	if err := n.advance(n.madeUpBlock(chainhash.Hash{}, opts.Height-1)); err != nil {
		return nil, err
	}

	ln, err := listen(opts.PortHint)
	if err != nil {
		return nil, err
	}
	n.Host = ln.Addr().String()
	n.srv = &http.Server{Handler: n, ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) }}
	n.wg.Add(2)
	go func() {
		defer n.wg.Done()
		if err := n.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("fixture node: serve", "err", err)
		}
	}()
	go func() {
		defer n.wg.Done()
		n.blockTimer()
	}()
	n.log.Info("fixture node listening", "rpc", n.Host, "height", opts.Height, "bits", fmt.Sprintf("%08x", opts.Bits),
		"transactions", opts.Transactions, "block_interval", opts.BlockInterval)
	return n, nil
}

// listen takes 127.0.0.1:hint when it is free (a restarted dev stack
// keeps its node-rpc line), else a port the kernel picks.
func listen(hint int) (net.Listener, error) {
	if hint > 0 {
		if ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(hint))); err == nil {
			return ln, nil
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("fixture node: listen: %w", err)
	}
	return ln, nil
}

// URL is the RPC endpoint with credentials (serve's --node-url).
func (n *Node) URL() string {
	return (&url.URL{Scheme: "http", User: url.UserPassword(n.User, n.Pass), Host: n.Host}).String()
}

// Stop ends the server, its long polls and its timer.
func (n *Node) Stop(ctx context.Context) error {
	select {
	case <-n.done:
		return nil
	default:
	}
	close(n.done)
	err := n.srv.Shutdown(ctx)
	n.wg.Wait()
	if err != nil {
		return fmt.Errorf("fixture node: stop: %w", err)
	}
	return nil
}

// Tip is the current best block: its hash and height.
func (n *Node) Tip() (chainhash.Hash, int64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.tip.hash, n.tip.height
}

// Accepted is how many submitted blocks the node took.
func (n *Node) Accepted() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.accepted
}

// blockTimer makes a new previous block every interval; an accepted block
// starts the interval over.
func (n *Node) blockTimer() {
	t := time.NewTimer(n.opts.BlockInterval)
	defer t.Stop()
	for {
		select {
		case <-n.done:
			return
		case <-n.reset:
			t.Reset(n.opts.BlockInterval)
		case <-t.C:
			n.advanceMu.Lock()
			n.mu.Lock()
			tip := n.tip
			n.mu.Unlock()
			if err := n.advance(n.madeUpBlock(tip.hash, tip.height+1)); err != nil {
				n.log.Error("fixture node: new block", "err", err)
			}
			n.advanceMu.Unlock()
			t.Reset(n.opts.BlockInterval)
		}
	}
}

// madeUpBlock is a block the network "found": a header over the current
// template's transactions (behind a stand-in coinbase) with a random
// nonce. Its hash does not meet the bits; nothing here checks it.
func (n *Node) madeUpBlock(prev chainhash.Hash, height int64) *blockEntry {
	h := wire.BlockHeader{Version: blockVersion, PrevBlock: prev, Timestamp: time.Unix(time.Now().Unix(), 0),
		Bits: n.opts.Bits, Nonce: randUint32()}
	n.mu.Lock()
	if n.tmpl != nil {
		h.MerkleRoot = n.tmpl.merkleRoot
	}
	n.mu.Unlock()
	return &blockEntry{hash: h.BlockHash(), height: height, header: h, ntx: n.opts.Transactions + 1}
}

// advance makes b the tip and builds its successor's template, then wakes
// the long polls. The caller holds advanceMu (or is Start).
func (n *Node) advance(b *blockEntry) error {
	n.mu.Lock()
	n.seq++
	seq := n.seq
	n.mu.Unlock()
	// Built outside mu: a few tens of milliseconds that RPC readers need
	// not wait for.
	t, err := buildTemplate(b.hash, b.height+1, b.header.Timestamp.Unix(), n.opts.Bits, n.opts.Transactions, seq)
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.tip, n.tmpl = b, t
	n.byHash[b.hash] = b
	n.byHeight[b.height] = b
	// Heights grow by one per tip, so dropping the one block that falls
	// out of the window keeps it at keepBlocks.
	if old, ok := n.byHeight[b.height-keepBlocks]; ok {
		delete(n.byHeight, old.height)
		delete(n.byHash, old.hash)
	}
	close(n.changed)
	n.changed = make(chan struct{})
	n.mu.Unlock()
	n.log.Debug("fixture node: new tip", "height", b.height, "hash", b.hash, "submitted", b.submitted)
	return nil
}

func randUint32() uint32 {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

// request is a JSON-RPC call (1.0 or 2.0).
type request struct {
	ID     json.RawMessage   `json:"id"`
	Method string            `json:"method"`
	Params []json.RawMessage `json:"params"`
}

// rpcError is a JSON-RPC error object with bitcoind's codes.
type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (e *rpcError) Error() string { return fmt.Sprintf("rpc error %d: %s", e.Code, e.Message) }

// bitcoind's error codes, those the fixture gives.
const (
	codeParse           = -32700
	codeMethodNotFound  = -32601
	codeInvalidParams   = -32602
	codeInvalidAddrKey  = -5
	codeInvalidParam    = -8
	codeDeserialization = -22
)

func (n *Node) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "JSONRPC server handles only POST requests", http.StatusMethodNotAllowed)
		return
	}
	user, pass, ok := r.BasicAuth()
	if !ok || subtle.ConstantTimeCompare([]byte(user), []byte(n.User)) != 1 ||
		subtle.ConstantTimeCompare([]byte(pass), []byte(n.Pass)) != 1 {
		// As bitcoind: 401 with an empty body.
		w.Header().Set("WWW-Authenticate", `Basic realm="jsonrpc"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequest))
	if err != nil {
		return
	}
	var req request
	if err := json.Unmarshal(body, &req); err != nil {
		writeReply(w, nil, nil, &rpcError{Code: codeParse, Message: "Parse error"})
		return
	}
	result, err := n.call(r.Context(), req.Method, req.Params)
	var re *rpcError
	switch {
	case errors.As(err, &re):
		writeReply(w, req.ID, nil, re)
	case err != nil:
		writeReply(w, req.ID, nil, &rpcError{Code: -1, Message: err.Error()})
	default:
		writeReply(w, req.ID, result, nil)
	}
}

func writeReply(w http.ResponseWriter, id json.RawMessage, result []byte, rerr *rpcError) {
	if len(id) == 0 {
		id = json.RawMessage("null")
	}
	if result == nil {
		result = []byte("null")
	}
	errJSON := []byte("null")
	if rerr != nil {
		errJSON, _ = json.Marshal(rerr)
	}
	w.Header().Set("Content-Type", "application/json")
	// Written in pieces: a template's result is megabytes, not worth
	// copying into one buffer.
	for _, piece := range [][]byte{[]byte(`{"result":`), result, []byte(`,"error":`), errJSON, []byte(`,"id":`), id, []byte("}\n")} {
		if _, err := w.Write(piece); err != nil {
			return
		}
	}
}
