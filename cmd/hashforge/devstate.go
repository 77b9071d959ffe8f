package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/btcsuite/btcd/address/v2"
	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcutil/v2"
	"github.com/btcsuite/btcd/chaincfg/v2"
)

// devStateFile, in the dev data dir, is what `hashforge dev` keeps across
// restarts besides the chain, wallet and database: ports, credentials and
// addresses. Its absence means a data dir to start afresh.
const devStateFile = "state.json"

type devState struct {
	PostgresPort int    `json:"postgres_port"`
	Node         devRPC `json:"node"`
	Wallet       devRPC `json:"wallet"`
	// PoolAddress is a wallet address: the coinbases pay it, and the
	// wallet pays the miners from them.
	PoolAddress string `json:"pool_address"`
	// MinerAddress is what the bundled miner mines to, outside the
	// wallet; MinerKey is its WIF private key.
	MinerAddress string `json:"miner_address"`
	MinerKey     string `json:"miner_key"`
	// Fixture is what `--node fixture` keeps, apart from the simnet
	// stack's so that one data dir runs either.
	Fixture devFixture `json:"fixture,omitzero"`
}

// devFixture is the fixture node's RPC port and credentials, and the
// mainnet address its coinbases pay, with the address's WIF key (the
// fixture's blocks are made up, but a key kept beside an address is
// what makes it the pool's).
type devFixture struct {
	RPC         devRPC `json:"rpc"`
	PoolAddress string `json:"pool_address"`
	PoolKey     string `json:"pool_key"`
}

// newMainnetAddress makes a P2WPKH mainnet address from a fresh key.
func newMainnetAddress() (addr, wif string, err error) {
	key, err := btcec.NewPrivateKey()
	if err != nil {
		return "", "", fmt.Errorf("generate the fixture's pool key: %w", err)
	}
	a, err := address.NewAddressWitnessPubKeyHash(address.Hash160(key.PubKey().SerializeCompressed()), &chaincfg.MainNetParams)
	if err != nil {
		return "", "", fmt.Errorf("derive the fixture's pool address: %w", err)
	}
	w, err := btcutil.NewWIF(key, &chaincfg.MainNetParams, true)
	if err != nil {
		return "", "", fmt.Errorf("encode the fixture's pool key: %w", err)
	}
	return a.EncodeAddress(), w.String(), nil
}

// devRPC is a child's RPC port and credentials.
type devRPC struct {
	Port int    `json:"port"`
	User string `json:"user"`
	Pass string `json:"pass"`
}

func rpcStateOf(host, user, pass string) (devRPC, error) {
	_, p, err := net.SplitHostPort(host)
	if err != nil {
		return devRPC{}, fmt.Errorf("rpc address %q: %w", host, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return devRPC{}, fmt.Errorf("rpc address %q: %w", host, err)
	}
	return devRPC{Port: port, User: user, Pass: pass}, nil
}

// loadDevState reads the state file of data dir dir; kept is false when
// there is none.
func loadDevState(dir string) (st devState, kept bool, err error) {
	data, err := os.ReadFile(filepath.Join(dir, devStateFile))
	if errors.Is(err, os.ErrNotExist) {
		return devState{}, false, nil
	}
	if err != nil {
		return devState{}, false, fmt.Errorf("read dev state: %w", err)
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return devState{}, false, fmt.Errorf("dev state %s is damaged (run with --fresh to start over): %w",
			filepath.Join(dir, devStateFile), err)
	}
	return st, true, nil
}

// saveDevState writes the state file whole or not at all. It holds
// credentials and a private key: owner only.
func saveDevState(dir string, st devState) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, devStateFile+".tmp")
	if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("write dev state: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, devStateFile)); err != nil {
		return fmt.Errorf("write dev state: %w", err)
	}
	return nil
}

// lockDevDir takes the data dir's lock for as long as this process runs
// the stack on it: a second `hashforge dev` on the same dir would take the
// servers of the first for leftovers of a killed run and stop them. The
// kernel releases the lock when the process ends, however it ends.
func lockDevDir(dir string) (unlock func(), err error) {
	path := filepath.Join(dir, "dev.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s (stop the other hashforge dev, or give this one another --data-dir)", errDevDirInUse, dir)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

var errDevDirInUse = errors.New("another hashforge dev is running on this data dir")
