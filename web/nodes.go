package web

import (
	"context"
	"encoding/json"
	"time"

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
