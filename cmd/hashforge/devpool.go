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

// devFixturePoolSettings are those of `hashforge dev --node fixture`,
// where the network target is mainnet's and no share is a block: the
// session's difficulty alone sets the share rate, and a load test wants
// shares cheap to make. The floor, 1e-6 (about 4,300 hashes a share), lets
// a load generator that asks for it (mining.suggest_difficulty) submit
// thousands of shares a second from one core; sessions start at 0.001 and
// vardiff aims at a share a second, so the bundled CPU miner sends a
// steady stream too.
func devFixturePoolSettings(cfg *serveConfig) {
	cfg.StartDifficulty = 0.001
	cfg.MinDifficulty = devFixtureMinDifficulty
	cfg.ShareInterval = time.Second
}

// devFixtureMinDifficulty is the fixture dev stack's session difficulty
// floor.
const devFixtureMinDifficulty = 1e-6
