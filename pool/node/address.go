package node

import (
	"context"
	"fmt"

	"github.com/btcsuite/btcd/chaincfg/v2"

	"github.com/hashforge/hashforge/internal/btcaddr"
)

// Chain returns the node's network as getblockchaininfo names it (Core:
// "main", "test", "testnet4", "signet", "regtest"; btcd: "mainnet",
// "testnet3", "regtest", "simnet", …). The answer is cached: a node does not
// change networks without a restart that also changes its data.
func (c *Client) Chain(ctx context.Context) (string, error) {
	c.chainMu.Lock()
	defer c.chainMu.Unlock()
	if c.chain != "" {
		return c.chain, nil
	}
	var info struct {
		Chain string `json:"chain"`
	}
	if err := c.Call(ctx, "getblockchaininfo", nil, &info); err != nil {
		return "", err
	}
	if info.Chain == "" {
		return "", fmt.Errorf("getblockchaininfo: no chain name in the answer")
	}
	c.chain = info.Chain
	return c.chain, nil
}

// cachedChain is the chain name Chain learnt, "" before it did.
func (c *Client) cachedChain() string {
	c.chainMu.Lock()
	defer c.chainMu.Unlock()
	return c.chain
}

// chainParams maps a node's chain name to its parameters; nil when unknown.
func chainParams(chain string) *chaincfg.Params {
	switch chain {
	case "main", "mainnet":
		return &chaincfg.MainNetParams
	case "test", "testnet3":
		return &chaincfg.TestNet3Params
	case "testnet4":
		return &chaincfg.TestNet4Params
	case "signet":
		return &chaincfg.SigNetParams
	case "regtest":
		return &chaincfg.RegressionNetParams
	case "simnet":
		return &chaincfg.SimNetParams
	}
	return nil
}

// ValidateAddress reports whether addr is a valid address on the node's
// network. The node's validateaddress is not enough on its own: btcd's
// decodes an address of any known network and calls it valid (a mainnet
// bc1q… address passes on regtest), so the address must also decode for the
// node's own chain parameters when the chain is one we know.
func (c *Client) ValidateAddress(ctx context.Context, addr string) (bool, error) {
	var r struct {
		IsValid bool `json:"isvalid"`
	}
	if err := c.Call(ctx, "validateaddress", []any{addr}, &r); err != nil {
		return false, err
	}
	if !r.IsValid {
		return false, nil
	}
	chain, err := c.Chain(ctx)
	if err != nil {
		return false, fmt.Errorf("validate address: learn the node's network: %w", err)
	}
	params := chainParams(chain)
	if params == nil {
		return true, nil
	}
	a, err := btcaddr.Decode(addr, params)
	return err == nil && a.IsForNet(params), nil
}
