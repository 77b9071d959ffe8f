package pool

import "sync/atomic"

// Protocols the pool serves miners over, as shown per session and worker
// and in metrics.
const (
	ProtocolV1 = "stratum1"
	ProtocolV2 = "stratum2"
)

// protocolOf is the protocol of a connection: a Conn that is not a V1
// session says which it is.
func protocolOf(c conn) uint8 {
	if p, ok := c.(interface{ Protocol() string }); ok && p.Protocol() == ProtocolV2 {
		return 1
	}
	return 0
}

var protocolNames = [2]string{ProtocolV1, ProtocolV2}

// protoStats are the live counters by protocol.
type protoStats struct {
	sessions           [2]atomic.Int64
	accepted, rejected [2]atomic.Uint64
}

// ProtocolStats is one protocol's share of the pool's live counters.
type ProtocolStats struct {
	Sessions int
	Accepted uint64
	Rejected uint64
}

// ByProtocol snapshots the counters by protocol name.
func (s *Server) ByProtocol() map[string]ProtocolStats {
	out := make(map[string]ProtocolStats, len(protocolNames))
	for i, name := range protocolNames {
		out[name] = ProtocolStats{Sessions: int(s.protos.sessions[i].Load()),
			Accepted: s.protos.accepted[i].Load(), Rejected: s.protos.rejected[i].Load()}
	}
	return out
}
