package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashforge/hashforge/internal/devstack/devtest"
)

// TestServeRefusesSignetItCannotSign starts serve --network signet against
// a node answering like Bitcoin Core on the default public signet (replies
// recorded from Core's documentation, testdata/bitcoin-core): its blocks
// need a BIP 325 signature the pool cannot make, so serve refuses at start
// and says what to use instead. A --node-zmq that is no ZMQ address is
// refused at start too.
func TestServeRefusesSignetItCannotSign(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	raw, err := os.ReadFile("../../testdata/bitcoin-core/rpc_replies.json")
	if err != nil {
		t.Fatal(err)
	}
	var recorded struct {
		Replies map[string]struct {
			Status int             `json:"status"`
			Body   json.RawMessage `json:"body"`
		} `json:"replies"`
		DefaultSignetChallenge string `json:"default_signet_challenge"`
	}
	if err := json.Unmarshal(raw, &recorded); err != nil {
		t.Fatal(err)
	}
	core := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req struct {
			Method string `json:"method"`
		}
		json.Unmarshal(body, &req)
		name := map[string]string{
			"getblockchaininfo": "getblockchaininfo signet",
			"getblocktemplate":  "getblocktemplate signet OP_TRUE",
		}[req.Method]
		rep, ok := recorded.Replies[name]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"result":null,"error":{"code":-32601,"message":"Method not found"},"id":1}`)
			return
		}
		// The default signet: its challenge instead of OP_TRUE.
		out := strings.Replace(string(rep.Body), `"signet_challenge": "51"`, `"signet_challenge": "`+recorded.DefaultSignetChallenge+`"`, 1)
		w.WriteHeader(rep.Status)
		io.WriteString(w, out)
	}))
	defer core.Close()

	cfg := serveConfig{
		Network: "signet", NodeURL: core.URL, PoolAddress: "tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx",
		DatabaseURL: devtest.Postgres(t), StratumAddr: "127.0.0.1:0", SpoolDir: t.TempDir(),
		ShareInterval: 10 * time.Second, Extranonce2Size: 8, VersionMask: "1fffe000",
	}
	err = runServe(ctx, cfg, testLogger(slog.LevelDebug), func(listeners) { t.Error("serve listened on a signet it cannot mine") })
	if err == nil || !strings.Contains(err.Error(), "BIP 325") || !strings.Contains(err.Error(), "-signetchallenge=51") {
		t.Errorf("serve --network signet on the default signet: %v", err)
	}

	bad := cfg
	bad.NodeZMQ = "http://127.0.0.1:28332"
	err = runServe(ctx, bad, testLogger(slog.LevelDebug), func(listeners) { t.Error("serve listened with a bad --node-zmq") })
	if err == nil || !strings.Contains(err.Error(), "--node-zmq") {
		t.Errorf("serve --node-zmq http://…: %v", err)
	}
}
