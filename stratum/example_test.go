package stratum_test

import (
	"context"
	"log/slog"
	"sync"

	"github.com/hashforge/hashforge/stratum"
)

// pool is the smallest useful Handler: it answers the handshake and keeps
// the sessions that should receive jobs.
type pool struct {
	mu       sync.Mutex
	sessions map[*stratum.Session]struct{}
}

func (p *pool) Connected(s *stratum.Session) {}

func (p *pool) Handle(s *stratum.Session, req *stratum.Request) {
	switch req.Method {
	case "mining.subscribe":
		if _, err := stratum.ParseSubscribe(req.Params); err != nil {
			s.ReplyError(req.ID, err.(*stratum.Error))
			return
		}
		s.Reply(req.ID, stratum.SubscribeResult("1", "08000002", 4))
	case "mining.authorize":
		if _, err := stratum.ParseAuthorize(req.Params); err != nil {
			s.ReplyError(req.ID, err.(*stratum.Error))
			return
		}
		s.SetAuthorized()
		s.Reply(req.ID, true)
		// Difficulty and work right away: a miner will not ask again.
		s.Notify("mining.set_difficulty", []float64{1024})
		p.mu.Lock()
		p.sessions[s] = struct{}{}
		p.mu.Unlock()
	default:
		s.ReplyError(req.ID, stratum.Errorf(stratum.CodeOther, "unknown method"))
	}
}

func (p *pool) Disconnected(s *stratum.Session, err error) {
	p.mu.Lock()
	delete(p.sessions, s)
	p.mu.Unlock()
}

// broadcast encodes a job once and queues the same bytes on every session;
// a miner that cannot keep up is dropped, never waited for.
func (p *pool) broadcast(job stratum.NotifyParams) error {
	line, err := stratum.EncodeNotification("mining.notify", job)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for s := range p.sessions {
		s.SendLine(line)
	}
	return nil
}

func ExampleServer() {
	p := &pool{sessions: map[*stratum.Session]struct{}{}}
	srv := &stratum.Server{Handler: p, Logger: slog.Default()}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-srv.Ready()
		_ = p.broadcast(stratum.NotifyParams{JobID: "1", CleanJobs: true})
	}()
	_ = srv.ListenAndServe(ctx, "127.0.0.1:0")
}
