package devstack

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/hashforge/hashforge/internal/jsonrpc"
)

// rpcClient is the little JSON-RPC devstack needs to see a node or wallet
// come up and mine its first blocks; the pool's real clients are pool/node
// and payout/walletrpc, which devstack must not import.
type rpcClient struct {
	ep   jsonrpc.Endpoint
	http *http.Client
}

func newRPCClient(host, user, pass string) *rpcClient {
	return &rpcClient{
		// btcd answers an empty body to requests without "jsonrpc":"2.0".
		ep:   jsonrpc.Endpoint{URL: "http://" + host, User: user, Pass: pass, Version: "2.0"},
		http: &http.Client{Timeout: 60 * time.Second},
	}
}

// rpcError is an error object returned by the node.
type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (e *rpcError) Error() string { return fmt.Sprintf("rpc error %d: %s", e.Code, e.Message) }

func (c *rpcClient) call(ctx context.Context, method string, params []any, out any) error {
	r, err := c.ep.Post(ctx, c.http, 1, method, params, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	if r.Error != nil {
		re := &rpcError{}
		if err := json.Unmarshal(r.Error, re); err != nil {
			return fmt.Errorf("%s: undecodable error %.200q: %w", method, r.Error, err)
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
