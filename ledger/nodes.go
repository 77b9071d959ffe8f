package ledger

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// SetNodeID makes the blocks this ledger records say that node found
// them. Call it before use.
func (l *Ledger) SetNodeID(id int16) { l.nodeID = id }

// NodeHeldError refuses a node id another live process holds.
type NodeHeldError struct {
	NodeID    int16
	Holder    string
	Since     time.Time
	Heartbeat time.Time
}

func (e *NodeHeldError) Error() string {
	return fmt.Sprintf("node id %d is held by %s (running since %s, last heartbeat %s ago): another `hashforge serve` with this --node-id uses this database; give each process its own --node-id (a crashed holder's claim expires by itself)",
		e.NodeID, e.Holder, e.Since.UTC().Format(time.RFC3339), time.Since(e.Heartbeat).Round(time.Second))
}

// ErrNodeLost says a heartbeat found the lease held by another process:
// this one was away longer than the lease and another took the id.
var ErrNodeLost = errors.New("ledger: node id lease lost to another process")

// ClaimNode takes the lease on node id for holder (a string naming this
// process uniquely: host, pid, a random part). It fails with
// *NodeHeldError when another holder's heartbeat is younger than ttl.
func (l *Ledger) ClaimNode(ctx context.Context, id int16, holder string, ttl time.Duration) error {
	var got string
	var since, beat time.Time
	err := l.pool.QueryRow(ctx, `
		INSERT INTO pool_nodes AS n (node_id, holder, started_at, heartbeat)
		VALUES ($1, $2, now(), now())
		ON CONFLICT (node_id) DO UPDATE SET holder = EXCLUDED.holder, started_at = now(), heartbeat = now(), stats = '{}'
			WHERE n.holder = EXCLUDED.holder OR n.heartbeat < now() - $3::float8 * interval '1 second'
		RETURNING holder, started_at, heartbeat`, id, holder, ttl.Seconds()).Scan(&got, &since, &beat)
	if errors.Is(err, pgx.ErrNoRows) {
		held := &NodeHeldError{NodeID: id}
		if err := l.pool.QueryRow(ctx, `SELECT holder, started_at, heartbeat FROM pool_nodes WHERE node_id = $1`, id).
			Scan(&held.Holder, &held.Since, &held.Heartbeat); err != nil {
			return fmt.Errorf("ledger: node id %d: %w", id, err)
		}
		return held
	}
	if err != nil {
		return fmt.Errorf("ledger: claim node id %d: %w", id, err)
	}
	return nil
}

// HeartbeatNode renews holder's lease on id and stores the node's live
// state. ErrNodeLost when another process holds the id now.
func (l *Ledger) HeartbeatNode(ctx context.Context, id int16, holder string, stats any) error {
	b, err := json.Marshal(stats)
	if err != nil {
		return fmt.Errorf("ledger: node stats: %w", err)
	}
	tag, err := l.pool.Exec(ctx, `UPDATE pool_nodes SET heartbeat = now(), stats = $3 WHERE node_id = $1 AND holder = $2`, id, holder, b)
	if err != nil {
		return fmt.Errorf("ledger: node heartbeat: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNodeLost
	}
	return nil
}

// ReleaseNode gives the lease up (a clean exit): the id is free at once.
func (l *Ledger) ReleaseNode(ctx context.Context, id int16, holder string) error {
	_, err := l.pool.Exec(ctx, `DELETE FROM pool_nodes WHERE node_id = $1 AND holder = $2`, id, holder)
	return err
}

// PoolNode is one pool node as its lease row shows it.
type PoolNode struct {
	NodeID    int16
	Holder    string
	StartedAt time.Time
	Heartbeat time.Time
	// Stats is the node's live state as it last wrote it (JSON).
	Stats json.RawMessage
}

// PoolNodes lists the nodes whose heartbeat is younger than live, by id.
func (l *Ledger) PoolNodes(ctx context.Context, live time.Duration) ([]PoolNode, error) {
	rows, err := l.pool.Query(ctx, `
		SELECT node_id, holder, started_at, heartbeat, stats FROM pool_nodes
		WHERE heartbeat >= now() - $1::float8 * interval '1 second' ORDER BY node_id`, live.Seconds())
	if err != nil {
		return nil, fmt.Errorf("ledger: pool nodes: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (PoolNode, error) {
		var n PoolNode
		var stats []byte
		err := r.Scan(&n.NodeID, &n.Holder, &n.StartedAt, &n.Heartbeat, &stats)
		n.Stats = stats
		return n, err
	})
}

// PoolSecret returns the pool-wide secret called name, making it (size
// random bytes) if no node has yet. Every node gets the same bytes.
func (l *Ledger) PoolSecret(ctx context.Context, name string, size int) ([]byte, error) {
	fresh := make([]byte, size)
	if _, err := rand.Read(fresh); err != nil {
		return nil, err
	}
	if _, err := l.pool.Exec(ctx, `INSERT INTO pool_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`, name, fresh); err != nil {
		return nil, fmt.Errorf("ledger: pool secret %s: %w", name, err)
	}
	var v []byte
	if err := l.pool.QueryRow(ctx, `SELECT value FROM pool_secrets WHERE name = $1`, name).Scan(&v); err != nil {
		return nil, fmt.Errorf("ledger: pool secret %s: %w", name, err)
	}
	return v, nil
}
