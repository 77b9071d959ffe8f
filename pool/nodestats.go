package pool

import "math"

// NodeStats is one pool node's live state as the other nodes see it:
// serve writes it with its lease heartbeat (ledger.HeartbeatNode), and
// the dashboard and API of every node add them up.
type NodeStats struct {
	Sessions      int     `json:"sessions"`
	WorkersOnline int     `json:"workers_online"`
	MinersOnline  int     `json:"miners_online"`
	Accepted      uint64  `json:"shares_accepted"`
	Rejected      uint64  `json:"shares_rejected_total"`
	BlocksFound   uint64  `json:"blocks_found"`
	Hashrate      float64 `json:"hashrate"`
	JobHeight     int64   `json:"job_height"`
}

// NodeStats snapshots this node's live state.
func (s *Server) NodeStats() NodeStats {
	st := s.Stats()
	ns := NodeStats{Sessions: st.Sessions, WorkersOnline: st.AuthorizedWorkers, Accepted: st.Accepted,
		BlocksFound: st.BlocksFound, Hashrate: st.Hashrate, JobHeight: st.JobHeight}
	for _, n := range st.Rejected {
		ns.Rejected += n
	}
	miners := make(map[string]struct{})
	for _, w := range s.Online() {
		miners[w.Address] = struct{}{}
	}
	ns.MinersOnline = len(miners)
	if math.IsNaN(ns.Hashrate) || math.IsInf(ns.Hashrate, 0) {
		ns.Hashrate = 0 // JSON has no NaN
	}
	return ns
}
