// Package devstack starts the real components hashforge talks to — a private
// PostgreSQL cluster, a btcd node on regtest or simnet, a btcwallet
// following a simnet node — for `hashforge dev` and for tests.
//
// Everything it starts listens on 127.0.0.1 only, on a free port (or one
// the caller keeps), with its data and logs in one directory, and is started
// in its own process group so that a Ctrl-C on the terminal reaches the
// caller first: the caller decides the order of shutdown (pool before node,
// node before database) and calls Stop on each component. A directory given
// by the caller is kept: a later start reuses its cluster, chain or wallet,
// first stopping a server that a killed run left running there.
//
// Production packages must never import devstack; tests use it through
// devstack/devtest.
package devstack
