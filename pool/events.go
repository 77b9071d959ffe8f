package pool

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashforge/hashforge/record"
)

// EventKind says what an Event reports.
type EventKind uint8

const (
	// EventJob: a new job went out to the miners (Event.Job).
	EventJob EventKind = iota + 1
	// EventBlock: a block was submitted to the node, accepted or not
	// (Event.Block).
	EventBlock
	// EventWorkerUp: a worker was authorized on a connection (Event.Worker).
	EventWorkerUp
	// EventWorkerDown: a connection carrying a worker closed (Event.Worker).
	EventWorkerDown
)

func (k EventKind) String() string {
	switch k {
	case EventJob:
		return "job"
	case EventBlock:
		return "block"
	case EventWorkerUp:
		return "worker_up"
	case EventWorkerDown:
		return "worker_down"
	}
	return "unknown"
}

// Event is something observers of the pool (the dashboard's live feed,
// metrics) want to hear about. Exactly one of the pointers is set, as Kind
// says. Events are values: a subscriber may keep them.
type Event struct {
	Kind   EventKind
	Time   time.Time
	Job    *JobEvent
	Block  *record.Block
	Worker *WorkerEvent
}

// JobEvent describes a job broadcast.
type JobEvent struct {
	ID                string
	Height            int64
	Clean             bool
	NetworkDifficulty float64
	Transactions      int
	// Sessions is how many connections the broadcast went through
	// (subscribed and authorized ones were sent the job).
	Sessions int
	// FanOut is how long handing the job to every session's send queue
	// took: the delay the last miner saw on top of the node's.
	FanOut time.Duration
}

// WorkerEvent names a worker going on or off line on one connection. A
// worker name may be on several connections at once; each reports its own
// up and down.
type WorkerEvent struct {
	Address string
	Worker  string
	Remote  string
}

// Subscription is one observer's stream of pool events.
type Subscription struct {
	// C delivers the events. It is never closed: after Close, it just
	// stops receiving.
	C       <-chan Event
	c       chan Event
	dropped atomic.Uint64
	bus     *eventBus
}

// Dropped is the number of events that found C full and were discarded.
func (sub *Subscription) Dropped() uint64 { return sub.dropped.Load() }

// Close ends the subscription. C is left open, because a publisher holding
// the previous subscriber list may still drop one more event into it.
func (sub *Subscription) Close() { sub.bus.remove(sub) }

// eventBus fans pool events out to subscribers without ever waiting on
// them: the pool's job broadcast and share path must not slow down because
// a dashboard is slow, so a full subscriber loses the event instead.
// Publishing reads an immutable snapshot of the subscriber list, so the
// common case (no one listening) costs one atomic load.
type eventBus struct {
	mu   sync.Mutex // serialises changes to subs; a leaf (see Server.mu)
	subs atomic.Pointer[[]*Subscription]
}

// Subscribe returns a subscription whose channel buffers up to buf events
// (at least 1). Read it promptly: the pool never waits for a subscriber;
// events that find the buffer full are dropped and counted.
func (s *Server) Subscribe(buf int) *Subscription {
	return s.events.add(max(buf, 1))
}

func (b *eventBus) add(buf int) *Subscription {
	c := make(chan Event, buf)
	sub := &Subscription{C: c, c: c, bus: b}
	b.mu.Lock()
	defer b.mu.Unlock()
	var next []*Subscription
	if cur := b.subs.Load(); cur != nil {
		next = slices.Clone(*cur)
	}
	next = append(next, sub)
	b.subs.Store(&next)
	return sub
}

func (b *eventBus) remove(sub *Subscription) {
	b.mu.Lock()
	defer b.mu.Unlock()
	cur := b.subs.Load()
	if cur == nil {
		return
	}
	next := slices.DeleteFunc(slices.Clone(*cur), func(x *Subscription) bool { return x == sub })
	b.subs.Store(&next)
}

// publish hands ev to every subscriber that has room for it.
func (b *eventBus) publish(ev Event) {
	subs := b.subs.Load()
	if subs == nil {
		return
	}
	for _, sub := range *subs {
		select {
		case sub.c <- ev:
		default:
			sub.dropped.Add(1)
		}
	}
}

// listening reports whether anyone subscribed, so callers can skip
// building an event nobody will read.
func (b *eventBus) listening() bool {
	subs := b.subs.Load()
	return subs != nil && len(*subs) > 0
}

func (s *Server) publishJob(j *Job, sessions int, fanOut time.Duration) {
	if !s.events.listening() {
		return
	}
	s.events.publish(Event{Kind: EventJob, Time: s.now(), Job: &JobEvent{
		ID: j.ID, Height: j.Height, Clean: j.Clean, NetworkDifficulty: j.netDiff,
		Transactions: len(j.txData), Sessions: sessions, FanOut: fanOut,
	}})
}

func (s *Server) publishBlock(b record.Block) {
	if !s.events.listening() {
		return
	}
	s.events.publish(Event{Kind: EventBlock, Time: b.Time, Block: &b})
}

func (s *Server) publishWorker(kind EventKind, u Username, remote string) {
	if !s.events.listening() {
		return
	}
	s.events.publish(Event{Kind: kind, Time: s.now(), Worker: &WorkerEvent{Address: u.Address, Worker: u.Worker, Remote: remote}})
}

// OnlineWorker is a worker authorized on at least one open connection.
type OnlineWorker struct {
	Address     string
	Worker      string
	Connections int
	// Difficulty is vardiff's current share difficulty for the worker (of
	// one of its connections, when it has several).
	Difficulty float64
	// Protocol is what the worker speaks (ProtocolV1, ProtocolV2; of one
	// of its connections, when it has several).
	Protocol string
}

// Online lists the workers on open connections, one entry per address and
// worker name. It walks every session, so callers polling it for a
// dashboard should cache the answer for a second or two.
func (s *Server) Online() []OnlineWorker {
	s.mu.Lock()
	sessions := make([]*session, 0, len(s.sessions))
	for ss := range s.sessions {
		sessions = append(sessions, ss)
	}
	s.mu.Unlock()

	type key struct{ address, worker string }
	index := make(map[key]int) // into out
	var out []OnlineWorker
	for _, ss := range sessions {
		ss.mu.Lock()
		for _, u := range ss.workers.all() {
			k := key{u.Address, u.Worker}
			i, ok := index[k]
			if !ok {
				i = len(out)
				index[k] = i
				out = append(out, OnlineWorker{Address: u.Address, Worker: u.Worker})
			}
			out[i].Connections++
			out[i].Difficulty = ss.desired
			out[i].Protocol = protocolNames[ss.proto]
		}
		ss.mu.Unlock()
	}
	return out
}
