package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/btcsuite/btcd/chaincfg/v2"

	"github.com/hashforge/hashforge/internal/backoff"
)

// NetworkMismatchError says the node serves another chain than the pool was
// configured for. It is final: retrying cannot fix it.
type NetworkMismatchError struct {
	Endpoint  string // node URL without credentials
	NodeChain string // the chain name getblockchaininfo reported
	Want      string // the configured network's name (chaincfg.Params.Name)
}

func (e *NetworkMismatchError) Error() string {
	if chainParams(e.NodeChain) == nil {
		return fmt.Sprintf("node %s reports chain %q, which is not a network this pool knows; the pool is configured for %s",
			e.Endpoint, e.NodeChain, e.Want)
	}
	return fmt.Sprintf("node %s is on %s (getblockchaininfo chain %q) but the pool is configured for %s",
		e.Endpoint, chainParams(e.NodeChain).Name, e.NodeChain, e.Want)
}

// SignetChallengeError says the node is on a signet whose blocks must be
// signed: BIP 325 puts a solution to the network's challenge script in
// every block, made with the challenge's private key, which a pool does
// not have. Only a signet whose challenge is OP_TRUE (51) takes blocks
// with no solution. It is final: retrying cannot fix it.
type SignetChallengeError struct {
	Endpoint  string
	Challenge string // hex; empty when the node sent none
}

func (e *SignetChallengeError) Error() string {
	challenge := e.Challenge
	if challenge == "" {
		challenge = "(none in getblocktemplate)"
	}
	return fmt.Sprintf("node %s is on a signet whose blocks must carry a BIP 325 signet solution for challenge %s, "+
		"signed with the challenge's key, which hashforge cannot make; mine a signet whose challenge is OP_TRUE "+
		"(bitcoind -signet -signetchallenge=51), or use --network regtest", e.Endpoint, challenge)
}

// signetOpTrue is the one signet challenge a pool can mine: OP_TRUE
// (BIP 325: no solution in the block means an empty one, which OP_TRUE
// accepts).
const signetOpTrue = "51"

// IsFinalNetworkError reports errors of CheckNetwork and WaitNetwork that
// retrying cannot fix: the node is on another network, or on a signet the
// pool cannot mine.
func IsFinalNetworkError(err error) bool {
	var mismatch *NetworkMismatchError
	var signet *SignetChallengeError
	return errors.As(err, &mismatch) || errors.As(err, &signet)
}

// ChainMatches reports whether a chain name as getblockchaininfo gives it
// (Bitcoin Core: "main", "test", "testnet4", "signet", "regtest"; btcd:
// "mainnet", "testnet3", "regtest", "simnet", …) is the network params
// describes. An unknown chain name matches nothing.
func ChainMatches(chain string, params *chaincfg.Params) bool {
	p := chainParams(chain)
	return p != nil && params != nil && p.Name == params.Name
}

// CheckNetwork asks the node which chain it serves and compares it with
// params. A different (or unknown) chain is a *NetworkMismatchError. On
// signet it also reads the network's challenge from a block template: a
// challenge other than OP_TRUE is a *SignetChallengeError. Any other error
// means the answer could not be had (node unreachable, warming up or
// syncing, bad credentials) and is worth retrying.
func (c *Client) CheckNetwork(ctx context.Context, params *chaincfg.Params) error {
	chain, err := c.Chain(ctx)
	if err != nil {
		return fmt.Errorf("learn the node's network: %w", err)
	}
	if !ChainMatches(chain, params) {
		return &NetworkMismatchError{Endpoint: c.ep.URL, NodeChain: chain, Want: params.Name}
	}
	if params.Name != chaincfg.SigNetParams.Name {
		return nil
	}
	t, err := c.GetBlockTemplate(ctx, "")
	if err != nil {
		return fmt.Errorf("learn the signet challenge: %w", err)
	}
	if t.SignetChallenge != signetOpTrue {
		return &SignetChallengeError{Endpoint: c.ep.URL, Challenge: t.SignetChallenge}
	}
	return nil
}

// WaitNetwork runs CheckNetwork until the node answers: nil when its chain
// matches params, a *NetworkMismatchError when it does not (or a
// *SignetChallengeError on a signet the pool cannot mine), ctx.Err() when
// ctx ends first. While the node cannot be asked it logs a warning and
// retries with backoff (up to maxBackoff, 30 s when 0); it never gives up on
// its own, so a node that starts after the pool is simply waited for.
func (c *Client) WaitNetwork(ctx context.Context, params *chaincfg.Params, log *slog.Logger, maxBackoff time.Duration) error {
	if log == nil {
		log = slog.Default()
	}
	return waitNetwork(ctx, func(ctx context.Context) error { return c.CheckNetwork(ctx, params) }, log, maxBackoff,
		"cannot check the node's network yet, retrying", "node", c.ep.URL)
}

// waitNetwork runs check until it succeeds, fails for good
// (IsFinalNetworkError) or ctx ends, logging msg with attrs before each
// retry: the one loop of Client.WaitNetwork and Set.WaitNetwork.
func waitNetwork(ctx context.Context, check func(context.Context) error, log *slog.Logger, maxBackoff time.Duration, msg string, attrs ...any) error {
	if maxBackoff <= 0 {
		maxBackoff = 30 * time.Second
	}
	retry := backoff.Backoff{Min: 500 * time.Millisecond, Max: maxBackoff}
	for {
		err := check(ctx)
		switch {
		case err == nil:
			return nil
		case IsFinalNetworkError(err):
			return err
		case ctx.Err() != nil:
			return ctx.Err()
		}
		delay := retry.Next()
		log.Warn(msg, append(attrs, "in", delay, "err", err)...)
		if !backoff.Sleep(ctx, delay) {
			return ctx.Err()
		}
	}
}
