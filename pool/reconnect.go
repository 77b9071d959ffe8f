package pool

import (
	"encoding/json"
	"time"
)

// Reconnect sends client.reconnect to every session: to host:port after
// wait when host is set, else with no parameters (the miner reconnects to
// the address it used: behind DNS or a load balancer, another node). It
// returns how many sessions it asked. Miners that do not follow it are
// closed when serve stops.
func (s *Server) Reconnect(host string, port int, wait time.Duration) int {
	params := []any{}
	if host != "" {
		params = []any{host, port, int(wait.Seconds())}
	}
	line, err := json.Marshal(map[string]any{"id": nil, "method": "client.reconnect", "params": params})
	if err != nil {
		return 0
	}
	line = append(line, '\n')
	s.mu.Lock()
	sessions := make([]*session, 0, len(s.sessions))
	for ss := range s.sessions {
		sessions = append(sessions, ss)
	}
	s.mu.Unlock()
	for _, ss := range sessions {
		ss.c.SendLine(line)
	}
	s.log.Info("asked every miner to reconnect", "sessions", len(sessions), "to", host, "port", port)
	return len(sessions)
}
