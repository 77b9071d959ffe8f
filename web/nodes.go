package web

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hashforge/hashforge/ledger"
	"github.com/hashforge/hashforge/pool"
)

// NodeDirectory lists the pool nodes sharing the database, from their
// lease rows (ledger.Ledger implements it).
type NodeDirectory interface {
	PoolNodes(ctx context.Context, live time.Duration) ([]ledger.PoolNode, error)
}

// nodeLive is how recent a node's heartbeat must be for it to count: its
// lease (serve renews it every 5 s and lets it lapse after 15 s).
const nodeLive = 15 * time.Second

// nodeJSON is one pool node in /api/v1/stats.
type nodeJSON struct {
	NodeID    int       `json:"node_id"`
	This      bool      `json:"this"` // the node answering
	StartedAt time.Time `json:"started_at"`
	// HeartbeatAge is how old the figures are (0 for this node's own).
	HeartbeatAge float64 `json:"heartbeat_age_seconds"`
	pool.NodeStats
}

func (s *Server) readNodes(ctx context.Context) ([]nodeJSON, error) {
	if s.cfg.Nodes == nil {
		return nil, nil
	}
	rows, err := s.cfg.Nodes.PoolNodes(ctx, nodeLive)
	if err != nil {
		return nil, err
	}
	out := make([]nodeJSON, 0, len(rows))
	for _, r := range rows {
		n := nodeJSON{NodeID: int(r.NodeID), StartedAt: r.StartedAt.UTC(), HeartbeatAge: max(0, time.Since(r.Heartbeat).Seconds())}
		_ = json.Unmarshal(r.Stats, &n.NodeStats) // a node that wrote none yet shows zeros
		out = append(out, n)
	}
	return out, nil
}

// withThisNode puts this node's live state in place of its (older)
// heartbeat figures, adding it when its row is not there (no database
// lease: a test, or the database away).
func (s *Server) withThisNode(nodes []nodeJSON, live pool.NodeStats) []nodeJSON {
	out := make([]nodeJSON, 0, len(nodes)+1)
	found := false
	for _, n := range nodes {
		if n.NodeID == s.cfg.NodeID {
			n.This, n.NodeStats, n.HeartbeatAge, found = true, live, 0, true
		}
		out = append(out, n)
	}
	if !found {
		out = append(out, nodeJSON{NodeID: s.cfg.NodeID, This: true, StartedAt: s.started.UTC(), NodeStats: live})
	}
	return out
}

var (
	descPoolNodes = prometheus.NewDesc("hashforge_pool_nodes",
		"Pool nodes sharing the database with a live lease (this one included).", nil, nil)
	descPoolSessions = prometheus.NewDesc("hashforge_pool_sessions",
		"Stratum sessions on every live pool node, by node (node ids; this node's live, the others' from their last heartbeat).", []string{"node"}, nil)
	descPoolWorkers = prometheus.NewDesc("hashforge_pool_workers_online",
		"Authorized workers on every live pool node, by node.", []string{"node"}, nil)
	descPoolMiners = prometheus.NewDesc("hashforge_pool_miners_online",
		"Distinct payout addresses connected to each live pool node, by node (a miner on two nodes counts on each).", []string{"node"}, nil)
	descPoolHeartbeat = prometheus.NewDesc("hashforge_pool_node_heartbeat_age_seconds",
		"Age of each live pool node's figures (0 for this node's own).", []string{"node"}, nil)
)

var nodeDescs = []*prometheus.Desc{descPoolNodes, descPoolSessions, descPoolWorkers, descPoolMiners, descPoolHeartbeat}

// collectNodes reads the pool nodes at scrape time (one small query): any
// node's /metrics shows the whole pool, per node.
func (s *Server) collectNodes(live pool.NodeStats, gauge func(d *prometheus.Desc, v float64, labels ...string)) {
	if s.cfg.Nodes == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	nodes, err := s.readNodes(ctx)
	if err != nil {
		s.metrics.dbErrors.Add(1)
		return
	}
	nodes = s.withThisNode(nodes, live)
	gauge(descPoolNodes, float64(len(nodes)))
	for _, n := range nodes {
		id := strconv.Itoa(n.NodeID)
		gauge(descPoolSessions, float64(n.Sessions), id)
		gauge(descPoolWorkers, float64(n.WorkersOnline), id)
		gauge(descPoolMiners, float64(n.MinersOnline), id)
		gauge(descPoolHeartbeat, n.HeartbeatAge, id)
	}
}
