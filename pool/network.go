package pool

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/btcsuite/btcd/chaincfg/v2"
	"github.com/btcsuite/btcd/txscript/v2"

	"github.com/hashforge/hashforge/internal/btcaddr"
	"github.com/hashforge/hashforge/pow"
)

// ParseNetwork maps a network name as an operator types it to its chain
// parameters. "testnet" means testnet3, the network Bitcoin Core and btcd
// both call testnet; testnet4 must be asked for by name.
func ParseNetwork(name string) (*chaincfg.Params, error) {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "mainnet", "main", "bitcoin":
		return &chaincfg.MainNetParams, nil
	case "testnet", "testnet3", "test":
		return &chaincfg.TestNet3Params, nil
	case "testnet4":
		return &chaincfg.TestNet4Params, nil
	case "signet":
		return &chaincfg.SigNetParams, nil
	case "regtest", "regression":
		return &chaincfg.RegressionNetParams, nil
	case "simnet":
		return &chaincfg.SimNetParams, nil
	}
	return nil, fmt.Errorf("pool: unknown network %q (want mainnet, testnet, testnet4, signet, regtest or simnet)", name)
}

// Username is a parsed Stratum username: "<payout address>.<worker name>".
type Username struct {
	Address string
	Worker  string
}

// ParseUsername splits a Stratum username at its first dot and checks that
// the address part is a valid address of the given network; Address is
// its canonical spelling (btcaddr.Normalize: bech32 in lower case). Bech32 and
// base58 addresses contain no dot, so the first dot is always the separator;
// worker names may contain further dots.
func ParseUsername(user string, net *chaincfg.Params) (Username, error) {
	addr, worker, _ := strings.Cut(strings.TrimSpace(user), ".")
	if addr == "" {
		return Username{}, fmt.Errorf("username %q has no payout address (want <address>.<worker>)", user)
	}
	if _, err := payoutScript(addr, net); err != nil {
		return Username{}, err
	}
	// The address becomes the miner's worker rows, account and payment
	// items: one spelling per address, or "BCRT1Q…" and "bcrt1q…" would
	// be two accounts and a payment batch holding both one that Bitcoin
	// Core refuses.
	canon, err := btcaddr.Normalize(addr, net)
	if err != nil {
		return Username{}, fmt.Errorf("invalid %s address %q: %w", net.Name, addr, err)
	}
	return Username{Address: canon, Worker: worker}, nil
}

// ParseAddress checks that addr (an operator's --pool-address or
// --fee-address) is a payable address of the network and returns its
// canonical spelling, the one accounts are kept under (see ParseUsername).
func ParseAddress(addr string, net *chaincfg.Params) (string, error) {
	addr = strings.TrimSpace(addr)
	if _, err := payoutScript(addr, net); err != nil {
		return "", err
	}
	canon, err := btcaddr.Normalize(addr, net)
	if err != nil {
		return "", fmt.Errorf("invalid %s address %q: %w", net.Name, addr, err)
	}
	return canon, nil
}

// payoutScript validates an address for the network and returns the output
// script that pays it.
func payoutScript(addr string, net *chaincfg.Params) ([]byte, error) {
	a, err := btcaddr.Decode(addr, net)
	if err != nil {
		return nil, fmt.Errorf("invalid %s address %q: %w", net.Name, addr, err)
	}
	// DecodeAddress accepts any network sharing the default network's
	// encoding (testnet and regtest base58 versions are identical);
	// IsForNet is the check that actually pins the network.
	if !a.IsForNet(net) {
		return nil, fmt.Errorf("address %q is not a %s address", addr, net.Name)
	}
	script, err := txscript.PayToAddrScript(a)
	if err != nil {
		return nil, fmt.Errorf("address %q cannot be paid: %w", addr, err)
	}
	return script, nil
}

// PasswordDifficulty reads the difficulty a miner asks for in its Stratum
// password, as many pools accept it and miners' docs describe: a `d=N`
// field among comma-separated fields ("d=0.01", "x,d=65536"). ok is false
// when there is none, or when its value is not a positive finite number
// (the rest of the password is the miner's business, so a bad d= is
// ignored rather than refused).
func PasswordDifficulty(password string) (d float64, ok bool) {
	for field := range strings.SplitSeq(password, ",") {
		k, v, found := strings.Cut(strings.TrimSpace(field), "=")
		if !found || !strings.EqualFold(k, "d") {
			continue
		}
		// Sixty-four characters are more than any difficulty needs and
		// keep a hostile password from costing parse time.
		if len(v) > 64 {
			return 0, false
		}
		d, err := strconv.ParseFloat(v, 64)
		if err != nil || !(d > 0) || math.IsInf(d, 0) {
			return 0, false
		}
		if _, err := pow.DifficultyToTarget(d); err != nil {
			return 0, false
		}
		return d, true
	}
	return 0, false
}
