package web

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hashforge/hashforge/pool"
)

// protocolSource is implemented by a pool that counts by protocol
// (Stratum V1, V2); PoolState does not require it.
type protocolSource interface {
	ByProtocol() map[string]pool.ProtocolStats
}

// protocolJSON is one protocol's counters in /api/v1/stats.
type protocolJSON struct {
	Sessions int    `json:"sessions"`
	Accepted uint64 `json:"shares_accepted"`
	Rejected uint64 `json:"shares_rejected"`
}

func (s *Server) protocols() map[string]protocolJSON {
	src, ok := s.cfg.Pool.(protocolSource)
	if !ok {
		return nil
	}
	out := make(map[string]protocolJSON)
	for name, p := range src.ByProtocol() {
		out[name] = protocolJSON{Sessions: p.Sessions, Accepted: p.Accepted, Rejected: p.Rejected}
	}
	return out
}

var (
	descProtoSessions = prometheus.NewDesc("hashforge_protocol_sessions",
		"Open sessions (V2: channels) by protocol: stratum1, stratum2.", []string{"protocol"}, nil)
	descProtoShares = prometheus.NewDesc("hashforge_protocol_shares_total",
		"Shares answered by protocol and result (accepted, rejected).", []string{"protocol", "result"}, nil)
)

func (s *Server) collectProtocols(counter, gauge func(d *prometheus.Desc, v float64, labels ...string)) {
	src, ok := s.cfg.Pool.(protocolSource)
	if !ok {
		return
	}
	for name, p := range src.ByProtocol() {
		gauge(descProtoSessions, float64(p.Sessions), name)
		counter(descProtoShares, float64(p.Accepted), name, "accepted")
		counter(descProtoShares, float64(p.Rejected), name, "rejected")
	}
}
