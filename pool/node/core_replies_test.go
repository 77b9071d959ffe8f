package node

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chaincfg/v2"
)

// coreReply is one recorded Bitcoin Core reply of
// testdata/bitcoin-core/rpc_replies.json (see its README for the sources).
type coreReply struct {
	Status int             `json:"status"`
	Body   json.RawMessage `json:"body"`
}

type coreReplies struct {
	Replies                map[string]coreReply `json:"replies"`
	DefaultSignetChallenge string               `json:"default_signet_challenge"`
}

func loadCoreReplies(t *testing.T) coreReplies {
	t.Helper()
	raw, err := os.ReadFile("../../testdata/bitcoin-core/rpc_replies.json")
	if err != nil {
		t.Fatal(err)
	}
	var r coreReplies
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r coreReplies) get(t *testing.T, name string) coreReply {
	t.Helper()
	rep, ok := r.Replies[name]
	if !ok {
		t.Fatalf("no recorded reply %q", name)
	}
	return rep
}

// recordedCore answers each request with the recorded reply that pick
// names for it, and keeps the requests.
type recordedCore struct {
	t       *testing.T
	replies coreReplies
	pick    func(method string, params []json.RawMessage) string

	mu   sync.Mutex
	seen []map[string]json.RawMessage
}

func (f *recordedCore) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var req map[string]json.RawMessage
	if err := json.Unmarshal(body, &req); err != nil {
		f.t.Errorf("request is not JSON: %q", body)
		return
	}
	f.mu.Lock()
	f.seen = append(f.seen, req)
	f.mu.Unlock()
	var method string
	var params []json.RawMessage
	json.Unmarshal(req["method"], &method)
	json.Unmarshal(req["params"], &params)
	rep := f.replies.get(f.t, f.pick(method, params))
	w.WriteHeader(rep.Status)
	w.Write(rep.Body)
}

func (f *recordedCore) requests() []map[string]json.RawMessage {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.seen)
}

func newRecordedCore(t *testing.T, pick func(string, []json.RawMessage) string) (*recordedCore, *Client) {
	t.Helper()
	f := &recordedCore{t: t, replies: loadCoreReplies(t), pick: pick}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c, err := New(srv.URL, "", "")
	if err != nil {
		t.Fatal(err)
	}
	return f, c
}

// TestCoreRecordedSubmitBlock: every submitblock answer Core documents
// comes back as the verdict, and null as acceptance.
func TestCoreRecordedSubmitBlock(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	var name string
	_, c := newRecordedCore(t, func(string, []json.RawMessage) string { return name })
	for reply, want := range map[string]string{
		"submitblock accepted":               "",
		"submitblock duplicate":              "duplicate",
		"submitblock duplicate-invalid":      "duplicate-invalid",
		"submitblock duplicate-inconclusive": "duplicate-inconclusive",
		"submitblock inconclusive":           "inconclusive",
		"submitblock high-hash":              "high-hash",
		"submitblock bad-txnmrklroot":        "bad-txnmrklroot",
		"submitblock decode failed":          "Block decode failed",
	} {
		name = reply
		if got, err := c.SubmitBlock(ctx, "00"); got != want || err != nil {
			t.Errorf("%s: verdict %q, %v; want %q", reply, got, err, want)
		}
	}
}

// signetCore answers like Bitcoin Core on a signet with the given
// challenge: getblocktemplate without the signet rule is error -8.
func signetCore(t *testing.T, challenge string) (*recordedCore, *Client) {
	t.Helper()
	f, c := newRecordedCore(t, func(method string, params []json.RawMessage) string {
		switch method {
		case "getblockchaininfo":
			return "getblockchaininfo signet"
		case "getblocktemplate":
			var req struct {
				Rules []string `json:"rules"`
			}
			if len(params) > 0 {
				json.Unmarshal(params[0], &req)
			}
			if !slices.Contains(req.Rules, "signet") {
				return "getblocktemplate without the signet rule"
			}
			return "getblocktemplate signet OP_TRUE"
		}
		t.Errorf("unexpected %s", method)
		return "submitblock decode failed"
	})
	if challenge != "51" {
		// The same template on a signet with another challenge.
		rep := f.replies.Replies["getblocktemplate signet OP_TRUE"]
		rep.Body = json.RawMessage(strings.Replace(string(rep.Body), `"signet_challenge": "51"`, `"signet_challenge": "`+challenge+`"`, 1))
		if !strings.Contains(string(rep.Body), challenge) {
			t.Fatal("challenge not substituted")
		}
		f.replies.Replies["getblocktemplate signet OP_TRUE"] = rep
	}
	return f, c
}

func gbtRules(t *testing.T, req map[string]json.RawMessage) []string {
	t.Helper()
	var params []struct {
		Rules []string `json:"rules"`
	}
	if err := json.Unmarshal(req["params"], &params); err != nil || len(params) != 1 {
		t.Fatalf("getblocktemplate params %s: %v", req["params"], err)
	}
	return params[0].Rules
}

// TestCoreSignetTemplate: on signet, getblocktemplate carries the signet
// rule, whether the client knew the network (CheckNetwork ran) or learnt
// it from Core's error -8; and a signet with an OP_TRUE challenge passes
// the network check.
func TestCoreSignetTemplate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	// Not told: the first request hears -8 and is made again at once.
	f, c := signetCore(t, "51")
	tmpl, err := c.GetBlockTemplate(ctx, "")
	if err != nil {
		t.Fatalf("getblocktemplate on signet: %v", err)
	}
	if tmpl.SignetChallenge != "51" || tmpl.Height != 1 || len(tmpl.WitnessCommitment) != 38 {
		t.Errorf("signet template %+v", tmpl)
	}
	reqs := f.requests()
	if len(reqs) != 2 || !slices.Contains(gbtRules(t, reqs[1]), "signet") {
		t.Fatalf("requests %v, want one refused and one with the signet rule", reqs)
	}
	if _, err := c.GetBlockTemplate(ctx, "lp"); err != nil {
		t.Fatal(err)
	}
	if reqs = f.requests(); len(reqs) != 3 || !slices.Contains(gbtRules(t, reqs[2]), "signet") {
		t.Errorf("after learning: requests %v, want the signet rule straight away", reqs)
	}

	// Told by CheckNetwork: the rule is there from the first request.
	f, c = signetCore(t, "51")
	if err := c.CheckNetwork(ctx, &chaincfg.SigNetParams); err != nil {
		t.Fatalf("CheckNetwork on an OP_TRUE signet: %v", err)
	}
	for _, req := range f.requests() {
		var method string
		json.Unmarshal(req["method"], &method)
		if method == "getblocktemplate" && !slices.Contains(gbtRules(t, req), "signet") {
			t.Errorf("getblocktemplate without the signet rule after the chain was known: %s", req["params"])
		}
	}
}

// TestCoreSignetRefused: a signet whose blocks must be signed (the default
// public signet's challenge) cannot be mined by a pool; the network check
// says so, finally, with what to use instead.
func TestCoreSignetRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	challenge := loadCoreReplies(t).DefaultSignetChallenge
	_, c := signetCore(t, challenge)
	err := c.CheckNetwork(ctx, &chaincfg.SigNetParams)
	var se *SignetChallengeError
	if !errors.As(err, &se) || se.Challenge != challenge || !IsFinalNetworkError(err) {
		t.Fatalf("CheckNetwork on the default signet: %v, want a final SignetChallengeError", err)
	}
	for _, want := range []string{"BIP 325", "-signetchallenge=51", "regtest"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q does not mention %s", err, want)
		}
	}
	// WaitNetwork gives up on it at once instead of retrying forever.
	_, c = signetCore(t, challenge)
	if err := c.WaitNetwork(ctx, &chaincfg.SigNetParams, nil, time.Millisecond); !errors.As(err, &se) {
		t.Fatalf("WaitNetwork on the default signet: %v", err)
	}
}
