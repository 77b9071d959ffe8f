package fixturenode

import (
	"bytes"
	"context"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chainhash/v2"
	"github.com/btcsuite/btcd/wire/v2"
)

// FuzzSubmitBlock: whatever a client submits, submitblock answers with a
// verdict or an RPC error and never takes a block without work (the
// fuzzer cannot meet even regtest's bits often, and never mainnet's).
func FuzzSubmitBlock(f *testing.F) {
	n, err := Start(context.Background(), Options{BlockInterval: time.Hour, Transactions: 3})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { n.Stop(context.Background()) })
	cb := wire.NewMsgTx(1)
	cb.AddTxIn(wire.NewTxIn(wire.NewOutPoint(&chainhash.Hash{}, 0xffffffff), []byte{0x03, 0x48, 0x1d, 0x0e}, wire.TxWitness{make([]byte, 32)}))
	cb.AddTxOut(wire.NewTxOut(1, append(append([]byte{}, witnessCommitmentHeader...), make([]byte, 32)...)))
	blk := wire.MsgBlock{Header: wire.BlockHeader{Bits: DefaultBits}, Transactions: []*wire.MsgTx{cb}}
	var buf bytes.Buffer
	if err := blk.Serialize(&buf); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, raw []byte) {
		verdict, err := n.submitBlock(hex.EncodeToString(raw))
		if err == nil && verdict == "" {
			t.Fatalf("block %x accepted", raw)
		}
	})
}

// FuzzRequest: any request body gets a JSON-RPC reply, not a panic.
func FuzzRequest(f *testing.F) {
	n, err := Start(context.Background(), Options{BlockInterval: time.Hour, Transactions: 3})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { n.Stop(context.Background()) })
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"getblocktemplate","params":[{"rules":["segwit"]}]}`,
		`{"id":"x","method":"getblockheader","params":["00",true]}`,
		`{"id":2,"method":"getblockhash","params":[-1]}`,
		`{"id":3,"method":"validateaddress","params":[1]}`,
		`{"id":4,"method":"submitblock","params":[]}`,
		`[]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		// A long poll naming the current template would wait for the
		// next block: the request's context is already over.
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/", bytes.NewReader(body))
		req.SetBasicAuth(n.User, n.Pass)
		w := httptest.NewRecorder()
		n.ServeHTTP(w, req)
		if w.Code != http.StatusOK || !bytes.HasPrefix(w.Body.Bytes(), []byte(`{"result":`)) {
			t.Fatalf("reply %d %q", w.Code, w.Body.Bytes())
		}
	})
}
