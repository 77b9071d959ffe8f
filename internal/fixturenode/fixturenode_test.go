package fixturenode_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/address/v2"
	"github.com/btcsuite/btcd/blockchain"
	"github.com/btcsuite/btcd/btcutil/v2"
	"github.com/btcsuite/btcd/chaincfg/v2"
	"github.com/btcsuite/btcd/chainhash/v2"
	"github.com/btcsuite/btcd/txscript/v2"
	"github.com/btcsuite/btcd/wire/v2"

	"github.com/hashforge/hashforge/internal/fixturenode"
	"github.com/hashforge/hashforge/pool"
	"github.com/hashforge/hashforge/pool/node"
	"github.com/hashforge/hashforge/pow"
)

// easyBits is regtest's target: every other hash meets it, so a test can
// find a block.
const easyBits = 0x207fffff

// start runs a fixture node for the test and returns a client of the
// project's own (pool/node), which parses its templates.
func start(t *testing.T, opts fixturenode.Options) (*fixturenode.Node, *node.Client) {
	t.Helper()
	if opts.BlockInterval == 0 {
		opts.BlockInterval = time.Hour // tests move the tip themselves
	}
	n, err := fixturenode.Start(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.Stop(ctx); err != nil {
			t.Error(err)
		}
	})
	c, err := node.New(n.URL(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	return n, c
}

// poolScript is the output script of a mainnet P2WPKH address.
func poolScript(t *testing.T) (string, []byte) {
	t.Helper()
	a, err := address.NewAddressWitnessPubKeyHash(bytes.Repeat([]byte{0x42}, 20), &chaincfg.MainNetParams)
	if err != nil {
		t.Fatal(err)
	}
	script, err := txscript.PayToAddrScript(a)
	if err != nil {
		t.Fatal(err)
	}
	return a.EncodeAddress(), script
}

// TestFixtureTemplate: the template is a mainnet one as the pool reads it
// (pool/node parses it, pool.NewJob builds work from it): mainnet bits, a
// merkle branch of 12, a coinbase value of subsidy plus the fees, and a
// witness commitment that btcd computes the same from the transactions.
func TestFixtureTemplate(t *testing.T) {
	ctx := t.Context()
	fx, c := start(t, fixturenode.Options{})
	if err := c.CheckNetwork(ctx, &chaincfg.MainNetParams); err != nil {
		t.Fatalf("the fixture is not mainnet to the pool: %v", err)
	}
	addr, script := poolScript(t)
	if ok, err := c.ValidateAddress(ctx, addr); err != nil || !ok {
		t.Errorf("validateaddress %s: %v, %v; want valid", addr, ok, err)
	}
	if ok, err := c.ValidateAddress(ctx, "bcrt1qe250ukcvtyhu5z9hpuahmqs75ndlh43vptpwmt"); err != nil || ok {
		t.Errorf("validateaddress of a regtest address: %v, %v; want invalid", ok, err)
	}

	tmpl, err := c.GetBlockTemplate(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	tip, height := fx.Tip()
	if tmpl.PreviousBlockHash != tip || tmpl.Height != height+1 || tmpl.Height != fixturenode.DefaultHeight {
		t.Errorf("template on %s at %d; want on the tip %s at %d", tmpl.PreviousBlockHash, tmpl.Height, tip, height+1)
	}
	if tmpl.Bits != fixturenode.DefaultBits || tmpl.Version != 0x20000000 {
		t.Errorf("bits %08x version %08x; want mainnet's %08x and 20000000", tmpl.Bits, tmpl.Version, fixturenode.DefaultBits)
	}
	if now := time.Now().Unix(); tmpl.CurTime < now-5 || tmpl.CurTime > now+5 || tmpl.MinTime >= tmpl.CurTime {
		t.Errorf("curtime %d mintime %d; want now (%d) and before", tmpl.CurTime, tmpl.MinTime, now)
	}
	if len(tmpl.Transactions) != fixturenode.DefaultTransactions || tmpl.LongPollID == "" {
		t.Fatalf("%d transactions, longpollid %q", len(tmpl.Transactions), tmpl.LongPollID)
	}
	var fees int64
	txs := []*btcutil.Tx{btcutil.NewTx(wire.NewMsgTx(1))} // the coinbase's place
	seen := map[chainhash.Hash]bool{}
	for i, tx := range tmpl.Transactions {
		raw, err := hex.DecodeString(tx.Data)
		if err != nil {
			t.Fatal(err)
		}
		var msg wire.MsgTx
		if err := msg.Deserialize(bytes.NewReader(raw)); err != nil {
			t.Fatalf("transaction %d does not decode: %v", i, err)
		}
		if msg.TxHash() != tx.TxID || msg.WitnessHash() != tx.Hash || tx.TxID == tx.Hash || seen[tx.TxID] || tx.Fee <= 0 {
			t.Fatalf("transaction %d: txid %s hash %s fee %d; want its own distinct txid and wtxid and a fee", i, tx.TxID, tx.Hash, tx.Fee)
		}
		seen[tx.TxID] = true
		fees += tx.Fee
		txs = append(txs, btcutil.NewTx(&msg))
	}
	if tmpl.CoinbaseValue != 312_500_000+fees {
		t.Errorf("coinbasevalue %d; want 3.125 BTC plus %d sat of fees", tmpl.CoinbaseValue, fees)
	}
	// BIP 141, by btcd: the coinbase's wtxid counts as zero (the
	// witness merkle root of btcd's CalcMerkleRoot does so itself).
	root := blockchain.CalcMerkleRoot(txs, true)
	want := chainhash.DoubleHashH(append(root[:], make([]byte, 32)...))
	if !bytes.Equal(tmpl.WitnessCommitment, append([]byte{0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed}, want[:]...)) {
		t.Errorf("witness commitment %x; want 6a24aa21a9ed%x", tmpl.WitnessCommitment, want)
	}

	j, err := pool.NewJob(tmpl, pool.JobParams{ID: "1", Clean: true, Tag: "/t/", Extranonce2Size: 8,
		Outputs: pool.PoolOutputs(tmpl, script)})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(j.Notify(true).MerkleBranch); n != 12 {
		t.Errorf("merkle branch of %d; want 12, as a full mainnet block's", n)
	}
	if d := j.NetworkDifficulty(); d < 1e14 {
		t.Errorf("network difficulty %g; want mainnet's", d)
	}
}

// block is a block a miner would make from a fixture template through the
// pool's job: the job's coinbase with the witness reserved value, the
// template's transactions, a header ground to meet the template's bits
// (only easy bits can be met).
func block(t *testing.T, c *node.Client, mutate func(*wire.MsgBlock)) *wire.MsgBlock {
	t.Helper()
	tmpl, err := c.GetBlockTemplate(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	_, script := poolScript(t)
	j, err := pool.NewJob(tmpl, pool.JobParams{ID: "1", Clean: true, Tag: "/t/", Extranonce2Size: 8,
		Outputs: pool.PoolOutputs(tmpl, script)})
	if err != nil {
		t.Fatal(err)
	}
	var cb wire.MsgTx
	if err := cb.Deserialize(bytes.NewReader(j.Coinbase([]byte{0, 0, 0, 1}, make([]byte, 8)))); err != nil {
		t.Fatal(err)
	}
	cb.TxIn[0].Witness = wire.TxWitness{make([]byte, 32)}
	blk := &wire.MsgBlock{Transactions: []*wire.MsgTx{&cb}}
	for _, tx := range tmpl.Transactions {
		raw, _ := hex.DecodeString(tx.Data)
		var msg wire.MsgTx
		if err := msg.Deserialize(bytes.NewReader(raw)); err != nil {
			t.Fatal(err)
		}
		blk.Transactions = append(blk.Transactions, &msg)
	}
	blk.Header = wire.BlockHeader{Version: tmpl.Version, PrevBlock: tmpl.PreviousBlockHash,
		MerkleRoot: blockchain.CalcMerkleRoot(btcutil.NewBlock(blk).Transactions(), false),
		Timestamp:  time.Unix(tmpl.CurTime, 0), Bits: tmpl.Bits}
	if mutate != nil {
		mutate(blk)
	}
	target, err := pow.CompactToTarget(blk.Header.Bits)
	if err != nil {
		t.Fatal(err)
	}
	if blk.Header.Bits != easyBits {
		return blk // mainnet bits: no nonce would do
	}
	for {
		h := blk.Header.BlockHash()
		if pow.HashMeets((*[32]byte)(&h), target) {
			return blk
		}
		blk.Header.Nonce++
	}
}

func hexOf(t *testing.T, blk *wire.MsgBlock) string {
	t.Helper()
	var buf bytes.Buffer
	if err := blk.Serialize(&buf); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(buf.Bytes())
}

// TestFixtureSubmitBlock: submitblock refuses what bitcoind refuses, with
// its reasons, and takes a correct block, which becomes the tip at once.
func TestFixtureSubmitBlock(t *testing.T) {
	ctx := t.Context()
	t.Run("mainnet bits", func(t *testing.T) {
		_, c := start(t, fixturenode.Options{Transactions: 10})
		if v, err := c.SubmitBlock(ctx, hexOf(t, block(t, c, nil))); err != nil || v != "high-hash" {
			t.Errorf("a block with a random nonce at mainnet bits: %q, %v; want high-hash", v, err)
		}
	})

	fx, c := start(t, fixturenode.Options{Bits: easyBits})
	refused := map[string]func(*wire.MsgBlock){
		"bad-txnmrklroot": func(b *wire.MsgBlock) { b.Header.MerkleRoot[0] ^= 1 },
		"bad-witness-merkle-match": func(b *wire.MsgBlock) {
			b.Transactions[0].TxIn[0].Witness[0][0] = 1 // another reserved value than the commitment's
		},
		"bad-cb-amount": func(b *wire.MsgBlock) {
			b.Transactions[0].TxOut[0].Value++
			b.Header.MerkleRoot = blockchain.CalcMerkleRoot(btcutil.NewBlock(b).Transactions(), false)
		},
		"prev-blk-not-found": func(b *wire.MsgBlock) { b.Header.PrevBlock[5] ^= 1 },
	}
	for want, mutate := range refused {
		if v, err := c.SubmitBlock(ctx, hexOf(t, block(t, c, mutate))); err != nil || v != want {
			t.Errorf("submitblock: %q, %v; want %s", v, err, want)
		}
	}
	if v, err := c.SubmitBlock(ctx, "00"); err != nil || !strings.Contains(v, "decode") {
		t.Errorf("undecodable block: %q, %v; want a decode failure", v, err)
	}
	if fx.Accepted() != 0 {
		t.Fatalf("%d blocks accepted of refused ones", fx.Accepted())
	}

	_, before := fx.Tip()
	blk := block(t, c, nil)
	if err := blockchain.ValidateWitnessCommitment(btcutil.NewBlock(blk)); err != nil {
		t.Fatalf("the test's block fails btcd's witness check: %v", err)
	}
	if v, err := c.SubmitBlock(ctx, hexOf(t, blk)); err != nil || v != "" {
		t.Fatalf("a correct block: %q, %v; want it accepted", v, err)
	}
	tip, height := fx.Tip()
	if tip != blk.BlockHash() || height != before+1 || fx.Accepted() != 1 {
		t.Errorf("tip %s at %d after the block (%d accepted); want %s at %d", tip, height, fx.Accepted(), blk.BlockHash(), before+1)
	}
	if best, err := c.GetBestBlockHash(ctx); err != nil || best != blk.BlockHash().String() {
		t.Errorf("getbestblockhash %s, %v; want the block", best, err)
	}
	if h, err := c.GetBlockHash(ctx, height); err != nil || h != blk.BlockHash().String() {
		t.Errorf("getblockhash %d: %s, %v; want the block", height, h, err)
	}
	if info, err := c.GetBlockInfo(ctx, blk.BlockHash().String()); err != nil || info.Confirmations != 1 || info.Height != height {
		t.Errorf("getblock: %+v, %v; want the block with 1 confirmation", info, err)
	}
	if v, err := c.SubmitBlock(ctx, hexOf(t, blk)); err != nil || v != "duplicate" {
		t.Errorf("the block again: %q, %v; want duplicate", v, err)
	}
	if tmpl, err := c.GetBlockTemplate(ctx, ""); err != nil || tmpl.PreviousBlockHash != blk.BlockHash() {
		t.Errorf("template after the block: %v; want it on the block", err)
	}
}

// TestFixtureLongPoll: a long poll is held until the tip moves (here by a
// submitted block, with the timer an hour away), and the timer moves the
// tip every interval, answering the long poll held then.
func TestFixtureLongPoll(t *testing.T) {
	ctx := t.Context()
	t.Run("held until a block", func(t *testing.T) {
		_, c := start(t, fixturenode.Options{Bits: easyBits, Transactions: 50})
		first, err := c.GetBlockTemplate(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		blk := block(t, c, nil)
		got := make(chan *node.Template, 1)
		go func() {
			tmpl, err := c.GetBlockTemplate(ctx, first.LongPollID)
			if err != nil {
				t.Error(err)
			}
			got <- tmpl
		}()
		if v, err := c.SubmitBlock(ctx, hexOf(t, blk)); err != nil || v != "" {
			t.Fatalf("block: %q, %v", v, err)
		}
		select {
		case tmpl := <-got:
			// Had the long poll not been held, it would have answered
			// with the first template (the block came after the call,
			// or at best raced it: then it names the block too).
			if tmpl == nil || tmpl.PreviousBlockHash != blk.BlockHash() || tmpl.Height != first.Height+1 {
				t.Errorf("long poll answered %+v; want the template on the submitted block", tmpl)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("long poll still held 30 s after a block")
		}
	})

	t.Run("timer", func(t *testing.T) {
		fx, c := start(t, fixturenode.Options{BlockInterval: 300 * time.Millisecond, Transactions: 50})
		first, err := c.GetBlockTemplate(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		next, err := c.GetBlockTemplate(lctx, first.LongPollID)
		if err != nil {
			t.Fatalf("long poll: %v", err)
		}
		if next.PreviousBlockHash == first.PreviousBlockHash || next.Height <= first.Height || next.LongPollID == first.LongPollID {
			t.Errorf("long poll answered a template on %s at %d; want a new previous block after %s at %d",
				next.PreviousBlockHash, next.Height, first.PreviousBlockHash, first.Height)
		}
		if tip, _ := fx.Tip(); tip == first.PreviousBlockHash {
			t.Error("the tip did not move")
		}
		if next.Transactions[0].TxID == first.Transactions[0].TxID {
			t.Error("the new block's template offers the same transactions")
		}
	})
}

// BenchmarkTemplate is a getblocktemplate round trip of a full template,
// as the pool makes on every block and refresh.
func BenchmarkTemplate(b *testing.B) {
	n, err := fixturenode.Start(b.Context(), fixturenode.Options{BlockInterval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer n.Stop(context.Background())
	c, err := node.New(n.URL(), "", "")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := c.GetBlockTemplate(b.Context(), ""); err != nil {
			b.Fatal(err)
		}
	}
}
