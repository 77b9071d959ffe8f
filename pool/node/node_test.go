package node

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/address/v2"
	"github.com/btcsuite/btcd/btcutil/v2"
	"github.com/btcsuite/btcd/chaincfg/v2"
	"github.com/btcsuite/btcd/txscript/v2"
	"github.com/btcsuite/btcd/wire/v2"

	"github.com/hashforge/hashforge/internal/devstack"
	"github.com/hashforge/hashforge/internal/devstack/devtest"
)

func TestMain(m *testing.M) { os.Exit(devtest.Main(m)) }

// testTimeout bounds each test against a hung node; no assertion depends on
// how fast anything is.
const testTimeout = 2 * time.Minute

func newBtcdClient(t *testing.T, b *devstack.Btcd) *Client {
	t.Helper()
	c, err := New(b.RPCURL(), "", "")
	if err != nil {
		t.Fatalf("New(%s): %v", b.RPCHost, err)
	}
	return c
}

func TestBtcdTemplate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c := newBtcdClient(t, devtest.Btcd(t, devstack.BtcdOptions{}))

	count, err := c.GetBlockCount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	best, err := c.GetBestBlockHash(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := c.GetBlockTemplate(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if tmpl.Height != count+1 {
		t.Errorf("height %d, want count+1 = %d", tmpl.Height, count+1)
	}
	if tmpl.PreviousBlockHash.String() != best {
		t.Errorf("previousblockhash %s, want best %s", tmpl.PreviousBlockHash.String(), best)
	}
	if tmpl.Bits != 0x207fffff {
		t.Errorf("bits %08x, want regtest 207fffff", tmpl.Bits)
	}
	if tmpl.CoinbaseValue != 50_0000_0000 {
		t.Errorf("coinbasevalue %d, want 5000000000 on a young regtest chain", tmpl.CoinbaseValue)
	}
	if tmpl.CurTime < tmpl.MinTime || (tmpl.MaxTime != 0 && tmpl.CurTime > tmpl.MaxTime) {
		t.Errorf("curtime %d outside [mintime %d, maxtime %d]", tmpl.CurTime, tmpl.MinTime, tmpl.MaxTime)
	}
	if tmpl.Version&0x20000000 == 0 {
		t.Errorf("version %#x lacks the BIP 9 top bits", tmpl.Version)
	}
	if tmpl.LongPollID == "" {
		t.Error("btcd offers long polling but the template has no longpollid")
	}
	if len(tmpl.Transactions) != 0 || tmpl.WitnessCommitment != nil {
		t.Errorf("empty mempool gave %d transactions, witness commitment %x", len(tmpl.Transactions), tmpl.WitnessCommitment)
	}

	hashes, err := c.Generate(ctx, 2)
	if err != nil || len(hashes) != 2 {
		t.Fatalf("Generate(2) = %v, %v", hashes, err)
	}
	h, err := c.GetBlockHash(ctx, count+2)
	if err != nil || h != hashes[1] {
		t.Fatalf("GetBlockHash(%d) = %s, %v; want %s", count+2, h, err, hashes[1])
	}
	info, err := c.GetBlockInfo(ctx, hashes[1])
	if err != nil {
		t.Fatal(err)
	}
	if info.Height != count+2 || info.PreviousHash != hashes[0] || info.Confirmations != 1 || len(info.Tx) != 1 {
		t.Errorf("block info %+v", info)
	}
}

// TestBtcdWitnessTemplate spends a mature coinbase with a P2WPKH input so
// btcd's template carries a witness transaction, the only case in which
// btcd sends default_witness_commitment, and in its short form.
func TestBtcdWitnessTemplate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	b := devtest.Btcd(t, devstack.BtcdOptions{})
	c := newBtcdClient(t, b)
	// The coinbase of block 1 matures at height 101.
	if _, err := c.Generate(ctx, 100); err != nil {
		t.Fatal(err)
	}
	tx := spendCoinbase(t, ctx, c, b)
	var buf bytes.Buffer
	if err := tx.Serialize(&buf); err != nil {
		t.Fatal(err)
	}
	var txid string
	if err := c.Call(ctx, "sendrawtransaction", []any{hex.EncodeToString(buf.Bytes())}, &txid); err != nil {
		t.Fatalf("sendrawtransaction: %v", err)
	}

	tmpl, err := c.GetBlockTemplate(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(tmpl.Transactions) != 1 {
		t.Fatalf("template has %d transactions, want the one sent", len(tmpl.Transactions))
	}
	got := tmpl.Transactions[0]
	if got.TxID.String() != txid || got.TxID != tx.TxHash() || got.Hash != tx.WitnessHash() || got.TxID == got.Hash {
		t.Errorf("tx ids: template txid %s hash %s; sent txid %s wtxid %s", got.TxID, got.Hash, txid, tx.WitnessHash())
	}
	if got.Fee != 1000 {
		t.Errorf("fee %d, want 1000", got.Fee)
	}
	if tmpl.CoinbaseValue != 50_0000_0000+1000 {
		t.Errorf("coinbasevalue %d, want subsidy + fee", tmpl.CoinbaseValue)
	}
	if len(tmpl.WitnessCommitment) != 38 || !bytes.HasPrefix(tmpl.WitnessCommitment, []byte{0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed}) {
		t.Errorf("witness commitment %x, want a full 6a24aa21a9ed script", tmpl.WitnessCommitment)
	}
}

// spendCoinbase builds a signed transaction paying block 1's coinbase back
// to the mining address, minus a 1000 sat fee.
func spendCoinbase(t *testing.T, ctx context.Context, c *Client, b *devstack.Btcd) *wire.MsgTx {
	t.Helper()
	h1, err := c.GetBlockHash(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	var rawBlock string
	if err := c.GetBlock(ctx, h1, 0, &rawBlock); err != nil {
		t.Fatal(err)
	}
	blockBytes, _ := hex.DecodeString(rawBlock)
	var block wire.MsgBlock
	if err := block.Deserialize(bytes.NewReader(blockBytes)); err != nil {
		t.Fatal(err)
	}
	cb := block.Transactions[0]
	prevOut := cb.TxOut[0]

	addr, err := address.DecodeAddress(b.MiningAddr, b.Params)
	if err != nil {
		t.Fatal(err)
	}
	script, err := txscript.PayToAddrScript(addr)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(script, prevOut.PkScript) {
		t.Fatalf("coinbase pays %x, not the mining address script %x", prevOut.PkScript, script)
	}
	wif, err := btcutil.DecodeWIF(b.MiningKey)
	if err != nil {
		t.Fatal(err)
	}
	cbHash := cb.TxHash()
	tx := wire.NewMsgTx(2)
	tx.AddTxIn(wire.NewTxIn(wire.NewOutPoint(&cbHash, 0), nil, nil))
	tx.AddTxOut(wire.NewTxOut(prevOut.Value-1000, script))
	fetcher := txscript.NewCannedPrevOutputFetcher(prevOut.PkScript, prevOut.Value)
	hashes := txscript.NewTxSigHashes(tx, fetcher)
	wit, err := txscript.WitnessSignature(tx, hashes, 0, prevOut.Value, prevOut.PkScript, txscript.SigHashAll, wif.PrivKey, true)
	if err != nil {
		t.Fatal(err)
	}
	tx.TxIn[0].Witness = wit
	return tx
}

func TestBtcdSubmitBlockVerdicts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c := newBtcdClient(t, devtest.Btcd(t, devstack.BtcdOptions{}))

	verdict, err := c.SubmitBlock(ctx, "00")
	if err != nil {
		t.Fatalf("garbage block: transport error %v, want a verdict", err)
	}
	if verdict == "" {
		t.Fatal("garbage block accepted")
	}
	t.Logf("garbage verdict: %q", verdict)

	best, err := c.GetBestBlockHash(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var raw string
	if err := c.GetBlock(ctx, best, 0, &raw); err != nil {
		t.Fatal(err)
	}
	verdict, err = c.SubmitBlock(ctx, raw)
	if err != nil {
		t.Fatalf("known block: %v", err)
	}
	if !strings.HasPrefix(verdict, "rejected: ") || !strings.Contains(verdict, "already have") {
		t.Fatalf("known block verdict %q, want btcd's rejected: already have …", verdict)
	}
	if n, err := c.GetBlockCount(ctx); err != nil || n != 1 {
		t.Fatalf("chain moved after rejects: count %d, %v", n, err)
	}
}

func TestBtcdValidateAddress(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	b := devtest.Btcd(t, devstack.BtcdOptions{})
	c := newBtcdClient(t, b)
	for addr, want := range map[string]bool{
		b.MiningAddr: true,
		// Mainnet addresses: btcd's own validateaddress calls these valid.
		"bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq": false,
		"1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa":         false,
		"not-an-address":                             false,
	} {
		got, err := c.ValidateAddress(ctx, addr)
		if err != nil || got != want {
			t.Errorf("ValidateAddress(%s) = %v, %v; want %v", addr, got, err, want)
		}
	}
	// btcd regtest calls its chain "regtest".
	if err := c.CheckNetwork(ctx, &chaincfg.RegressionNetParams); err != nil {
		t.Errorf("CheckNetwork(regtest) on btcd regtest: %v", err)
	}
	var mm *NetworkMismatchError
	if err := c.CheckNetwork(ctx, &chaincfg.MainNetParams); !errors.As(err, &mm) {
		t.Errorf("CheckNetwork(mainnet) on btcd regtest: %v, want a mismatch", err)
	}
}

func TestBtcdWatchTemplates(t *testing.T) {
	for _, longPoll := range []bool{true, false} {
		t.Run(fmt.Sprintf("longpoll=%v", longPoll), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			c := newBtcdClient(t, devtest.Btcd(t, devstack.BtcdOptions{}))
			logs := &recordHandler{}
			out := make(chan *Template, 4)
			done := make(chan struct{})
			go func() {
				defer close(done)
				c.WatchTemplates(ctx, WatchOptions{DisableLongPoll: !longPoll, Refresh: time.Hour, Logger: slog.New(logs)}, out)
			}()
			defer func() { cancel(); <-done }()

			first := receive(t, ctx, out)
			best, _ := c.GetBestBlockHash(ctx)
			if first.PreviousBlockHash.String() != best {
				t.Fatalf("first template builds on %s, want tip %s", first.PreviousBlockHash.String(), best)
			}
			for i := range 3 {
				hashes, err := c.Generate(ctx, 1)
				if err != nil {
					t.Fatal(err)
				}
				next := receiveUntil(t, ctx, out, func(tp *Template) bool { return tp.PreviousBlockHash.String() != first.PreviousBlockHash.String() })
				if next.PreviousBlockHash.String() != hashes[0] || next.Height != first.Height+1 {
					t.Fatalf("block %d: template on %s at height %d, want %s at %d", i, next.PreviousBlockHash.String(), next.Height, hashes[0], first.Height+1)
				}
				first = next
			}
			if !longPoll && logs.has("long poll") {
				t.Errorf("long polling used although disabled: %v", logs.messages())
			}
		})
	}
}

// TestBtcdWatchNodeDown stops the node under a watcher, checks that it
// reports the outage and keeps trying, and that it recovers by itself when
// a node comes back at the same address.
func TestBtcdWatchNodeDown(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	opts := devstack.BtcdOptions{RPCUser: "u", RPCPass: "p"}
	b1 := devtest.Btcd(t, opts)
	c := newBtcdClient(t, b1)
	logs := &recordHandler{}
	out := make(chan *Template, 4)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.WatchTemplates(ctx, WatchOptions{MaxBackoff: 200 * time.Millisecond, Logger: slog.New(logs)}, out)
	}()
	defer func() { cancel(); <-done }()

	first := receive(t, ctx, out)
	if err := b1.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for !logs.has("node unreachable") {
		select {
		case <-ctx.Done():
			t.Fatalf("no outage logged: %v", logs.messages())
		case tp := <-out:
			if tp.PreviousBlockHash.String() != first.PreviousBlockHash.String() {
				t.Fatalf("template from a stopped node: %+v", tp)
			}
		case <-time.After(50 * time.Millisecond):
		}
	}

	// Same address and credentials; regtest starts a new chain, so its tip
	// tells the two nodes apart.
	_, port, _ := strings.Cut(b1.RPCHost, ":")
	fmt.Sscan(port, &opts.Port)
	b2 := devtest.Btcd(t, opts)
	best2, err := newBtcdClient(t, b2).GetBestBlockHash(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tp := receiveUntil(t, ctx, out, func(tp *Template) bool { return tp.PreviousBlockHash.String() == best2 })
	if tp.Height != 2 {
		t.Errorf("template from the new node at height %d, want 2", tp.Height)
	}
	if !logs.has("node back") {
		t.Errorf("recovery not logged: %v", logs.messages())
	}
}

func receive(t *testing.T, ctx context.Context, out <-chan *Template) *Template {
	t.Helper()
	select {
	case tp := <-out:
		return tp
	case <-ctx.Done():
		t.Fatal("no template from the watcher")
		return nil
	}
}

func receiveUntil(t *testing.T, ctx context.Context, out <-chan *Template, ok func(*Template) bool) *Template {
	t.Helper()
	for {
		if tp := receive(t, ctx, out); ok(tp) {
			return tp
		}
	}
}

// recordHandler keeps log messages so tests can check what an operator
// would have seen.
type recordHandler struct {
	mu   sync.Mutex
	msgs []string
}

func (h *recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *recordHandler) WithGroup(string) slog.Handler            { return h }
func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.msgs = append(h.msgs, r.Message)
	h.mu.Unlock()
	return nil
}

func (h *recordHandler) has(substr string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range h.msgs {
		if strings.Contains(m, substr) {
			return true
		}
	}
	return false
}

func (h *recordHandler) messages() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.msgs...)
}
