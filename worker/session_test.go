package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/hashforge/hashforge/stratum"
)

// A pool that never sends a clean job must not make the session keep every
// job it ever sent.
func TestSessionKeepsBoundedJobs(t *testing.T) {
	m := fuzzMiner(t)
	s, done := liveSession(m)
	defer done()
	ctx := context.Background()
	notify := func(id string, clean bool) {
		params := strings.Replace(fuzzNotify, `"j1"`, fmt.Sprintf("%q", id), 1)
		params = strings.Replace(params, `,true]`, fmt.Sprintf(",%v]", clean), 1)
		s.handle(ctx, stratum.Notification{Method: "mining.notify", Params: json.RawMessage(params)})
	}
	for i := range maxSessionJobs + 8 {
		notify(fmt.Sprintf("j%d", i), false)
	}
	notify("j20", false) // a resent id is not a new entry
	s.mu.Lock()
	n, oldest, newest, cur := len(s.jobs), s.jobs["j7"], s.jobs[fmt.Sprintf("j%d", maxSessionJobs+7)], s.current.job.ID
	s.mu.Unlock()
	if n != maxSessionJobs || oldest != nil || newest == nil || cur != "j20" {
		t.Errorf("%d jobs kept (want %d), oldest kept %v, newest kept %v, current %s", n, maxSessionJobs, oldest != nil, newest != nil, cur)
	}
	notify("clean", true)
	s.mu.Lock()
	n, order := len(s.jobs), len(s.jobOrder)
	s.mu.Unlock()
	if n != 1 || order != 1 {
		t.Errorf("after a clean job: %d jobs, %d in order", n, order)
	}
}

func TestSessionRefusesBadNotifications(t *testing.T) {
	m := fuzzMiner(t)
	s, done := liveSession(m)
	defer done()
	ctx := context.Background()
	s.handle(ctx, stratum.Notification{Method: "mining.notify", Params: json.RawMessage(fuzzNotify)})
	for _, n := range []struct{ method, params string }{
		{"mining.set_extranonce", `["` + strings.Repeat("ab", maxExtranonce1Size+1) + `",4]`},
		{"mining.notify", strings.Replace(fuzzNotify, `"j1"`, `"`+strings.Repeat("x", maxJobIDLen+1)+`"`, 1)},
		{"client.reconnect", `["",3334,"NaN"]`},
		{"client.reconnect", `["h\u0000st",3334,0]`},
	} {
		s.handle(ctx, stratum.Notification{Method: n.method, Params: json.RawMessage(n.params)})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.en1) != 4 || s.current.job.ID != "j1" || s.reconnect != nil {
		t.Errorf("extranonce1 %x, current job %.10q, reconnect %+v", s.en1, s.current.job.ID, s.reconnect)
	}
	// A huge wait is capped, not overflowed.
	s.mu.Unlock()
	s.handle(ctx, stratum.Notification{Method: "client.reconnect", Params: json.RawMessage(`["",3334,1e300]`)})
	s.mu.Lock()
	if s.reconnect == nil || s.reconnect.wait != maxReconnectWait || !strings.HasSuffix(s.reconnect.addr, "pool.example:3334") {
		t.Errorf("reconnect %+v", s.reconnect)
	}
}
