package pool

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// nextEvent takes the next event without waiting: the pool publishes
// synchronously, so an event that is not there yet never will be.
func nextEvent(t *testing.T, sub *Subscription) Event {
	t.Helper()
	select {
	case ev := <-sub.C:
		return ev
	default:
		t.Fatal("no event published")
		return Event{}
	}
}

// waitEvent waits for the next event: block events come from the
// background block recorder.
func waitEvent(t *testing.T, sub *Subscription) Event {
	t.Helper()
	select {
	case ev := <-sub.C:
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event published")
		return Event{}
	}
}

func TestEventsJobWorkerBlock(t *testing.T) {
	tp := newTestPool(t, nil)
	sub := tp.srv.Subscribe(16)
	defer sub.Close()

	if !tp.srv.publish(testTemplate(t, 120, 2, true), true) {
		t.Fatal("publish failed")
	}
	ev := nextEvent(t, sub)
	if ev.Kind != EventJob || ev.Job == nil || ev.Job.Height != 120 || !ev.Job.Clean || ev.Job.Transactions != 2 || ev.Job.Sessions != 0 {
		t.Fatalf("job event %+v %+v", ev, ev.Job)
	}

	c := &memConn{}
	ss := subscribeAuthorize(t, tp.srv, c, regtestAddr+".rig1", []any{"m"})
	ev = nextEvent(t, sub)
	if ev.Kind != EventWorkerUp || ev.Worker == nil || *ev.Worker != (WorkerEvent{Address: regtestAddr, Worker: "rig1", Remote: "mem"}) {
		t.Fatalf("worker up event %+v", ev)
	}
	// Authorizing the same name again on the connection is not a new worker.
	call(tp.srv, ss, "mining.authorize", []any{regtestAddr + ".rig1", ""})
	select {
	case ev := <-sub.C:
		t.Fatalf("re-authorize published %+v", ev)
	default:
	}
	if on := tp.srv.Online(); len(on) != 1 || on[0].Address != regtestAddr || on[0].Worker != "rig1" || on[0].Connections != 1 || on[0].Difficulty <= 0 {
		t.Fatalf("online %+v", on)
	}

	// The next broadcast reaches the one session.
	tmpl := testTemplate(t, 120, 2, true)
	tmpl.CurTime++
	tp.srv.publish(tmpl, false)
	if ev := nextEvent(t, sub); ev.Kind != EventJob || ev.Job.Sessions != 1 || ev.Job.Clean || ev.Job.FanOut < 0 {
		t.Fatalf("second job event %+v %+v", ev, ev.Job)
	}

	// Solve a block (regtest: any share meeting the capped target).
	var nt wireMsg
	for _, l := range c.take() {
		if m := parseLine(t, l); m.Method == "mining.notify" {
			nt = m
		}
	}
	var jobID string
	_ = json.Unmarshal(nt.Params[0], &jobID)
	for nonce := 0; nonce < 1000 && tp.sub.count() == 0; nonce++ {
		call(tp.srv, ss, "mining.submit", []any{regtestAddr + ".rig1", jobID, "0102030405060708", nt.Params[7], fmt.Sprintf("%08x", nonce)})
	}
	ev = waitEvent(t, sub)
	if ev.Kind != EventBlock || ev.Block == nil || !ev.Block.Accepted || ev.Block.Worker != "rig1" || ev.Block.Height != 120 || len(ev.Block.Hash) != 64 {
		t.Fatalf("block event %+v", ev)
	}

	tp.srv.disconnect(ss)
	if ev := nextEvent(t, sub); ev.Kind != EventWorkerDown || ev.Worker.Worker != "rig1" {
		t.Fatalf("worker down event %+v", ev)
	}
	if on := tp.srv.Online(); len(on) != 0 {
		t.Fatalf("online after disconnect: %+v", on)
	}
}

// A subscriber that does not read loses events; the pool carries on.
func TestEventsFullSubscriberDropsNeverBlocks(t *testing.T) {
	tp := newTestPool(t, nil)
	slow := tp.srv.Subscribe(1)
	defer slow.Close()
	tmpl := testTemplate(t, 120, 0, true)
	for i := range 5 {
		u := *tmpl
		u.CurTime += int64(i)
		if !tp.srv.publish(&u, i == 0) {
			t.Fatal("publish failed")
		}
	}
	if len(slow.C) != 1 || slow.Dropped() != 4 {
		t.Fatalf("buffered %d, dropped %d; want 1 and 4", len(slow.C), slow.Dropped())
	}

	slow.Close()
	tp.srv.publish(tmpl, false)
	if slow.Dropped() != 4 {
		t.Fatalf("a closed subscription still counts events: dropped %d", slow.Dropped())
	}
	if tp.srv.events.listening() {
		t.Fatal("closed subscription still listed")
	}
}

// BenchmarkPublishWorkerEvent is the cost the share path's neighbours
// (authorize, disconnect) pay per event: none listening, and one
// subscriber that keeps up.
func BenchmarkPublishWorkerEvent(b *testing.B) {
	tp := newTestPool(b, nil)
	u := Username{Address: regtestAddr, Worker: "rig1"}
	b.Run("no-subscriber", func(b *testing.B) {
		for b.Loop() {
			tp.srv.publishWorker(EventWorkerUp, u, "mem")
		}
	})
	b.Run("one-subscriber", func(b *testing.B) {
		sub := tp.srv.Subscribe(1024)
		defer sub.Close()
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			for {
				select {
				case <-sub.C:
				case <-stop:
					return
				}
			}
		}()
		for b.Loop() {
			tp.srv.publishWorker(EventWorkerUp, u, "mem")
		}
	})
}
