package main

import "time"

// devPoolSettings are the share difficulty settings of `hashforge dev`: the
// dev chain's network target (simnet, at its minimum difficulty like
// regtest) is met by every other hash, so the session's
// difficulty (not the network's) sets the share rate, and vardiff aims at
// about a share (each one a block) a second per miner, fast enough for
// coinbases to mature within minutes and slow enough that shares in flight
// when a block changes the tip stay rare.
func devPoolSettings(cfg *serveConfig) {
	cfg.StartDifficulty = 0.01
	cfg.MinDifficulty = 0.0001
	cfg.ShareInterval = time.Second
}
