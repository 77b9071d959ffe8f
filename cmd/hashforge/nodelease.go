package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hashforge/hashforge/internal/backoff"
	"github.com/hashforge/hashforge/ledger"
	"github.com/hashforge/hashforge/pool"
)

// Node id leases (docs/decisions.md, "Several pool nodes"): a process
// renews its claim every nodeHeartbeat; another may take the id once the
// claim is nodeLease old.
const (
	nodeLease     = 15 * time.Second
	nodeHeartbeat = 5 * time.Second
)

// holderGone reports whether holder names a process of this host that
// is no longer running.
func holderGone(holder string) bool {
	host, _ := os.Hostname()
	rest, ok := strings.CutPrefix(holder, host+":")
	if !ok {
		return false
	}
	pidText, _, ok := strings.Cut(rest, ":")
	pid, err := strconv.Atoi(pidText)
	if !ok || err != nil || pid <= 0 || pid == os.Getpid() {
		return false
	}
	return processGone(pid)
}

// nodeHolder names this process in the lease row: where it runs, and a
// random part so that a restarted process with the same pid is another.
func nodeHolder() string {
	host, _ := os.Hostname()
	var r [4]byte
	_, _ = rand.Read(r[:])
	return fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(r[:]))
}

// claimNode takes the lease on id for this process; the returned release
// gives it up (on a clean exit the id is free at once).
func claimNode(ctx context.Context, led *ledger.Ledger, id int16, log *slog.Logger) (holder string, release func(), err error) {
	holder = nodeHolder()
	for {
		err := led.ClaimNode(ctx, id, holder, nodeLease)
		var held *ledger.NodeHeldError
		if !errors.As(err, &held) {
			if err != nil {
				return "", nil, err
			}
			break
		}
		age := time.Since(held.Heartbeat)
		switch {
		case holderGone(held.Holder):
			// A process of this host that no longer runs (killed,
			// crashed): a restart need not wait for its lease.
			log.Info("taking over the node id of a process that is gone", "node_id", id, "previous", held.Holder)
			if err := led.ClaimNode(ctx, id, holder, 0); err != nil {
				return "", nil, err
			}
		case age > 2*nodeHeartbeat && age < nodeLease+nodeHeartbeat:
			// Silent for two heartbeats: most likely dead on another
			// host. Its lease runs out shortly.
			log.Warn("node id held by a process that has stopped renewing it; waiting for its lease to expire",
				"node_id", id, "holder", held.Holder, "expires_in", (nodeLease - age).Round(time.Second))
			if !backoff.Sleep(ctx, max(nodeLease-age, 0)+100*time.Millisecond) {
				return "", nil, ctx.Err()
			}
			continue
		default:
			return "", nil, err
		}
		break
	}
	log.Info("node id claimed", "node_id", id, "holder", holder)
	return holder, func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		if err := led.ReleaseNode(rctx, id, holder); err != nil {
			log.Warn("cannot release the node id; it expires by itself", "node_id", id, "err", err, "after", nodeLease)
		}
	}, nil
}

// holdNode renews the lease on id until ctx ends, writing the pool's live
// state with each heartbeat. Losing the lease to another process ends
// serve: two processes with one node id would hand out the same
// extranonce1 values.
func holdNode(ctx context.Context, led *ledger.Ledger, id int16, holder string, srv *pool.Server, log *slog.Logger) error {
	t := time.NewTicker(nodeHeartbeat)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		err := led.HeartbeatNode(ctx, id, holder, srv.NodeStats())
		switch {
		case errors.Is(err, ledger.ErrNodeLost):
			return fmt.Errorf("node id %d was taken by another process while this one could not reach the database for %s; stopping so that no extranonce1 is handed out twice", id, nodeLease)
		case err != nil && ctx.Err() == nil:
			if !failing {
				log.Warn("node heartbeat failed; retrying (shares go on into the spool)", "node_id", id, "err", err)
			}
			failing = true
		case err == nil && failing:
			log.Info("node heartbeat works again", "node_id", id)
			failing = false
		}
	}
}
