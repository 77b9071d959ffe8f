package stratum

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/hashforge/hashforge/internal/connlimit"
)

// Reasons a Gate ends or refuses a session.
var (
	// ErrEvicted ends a session that had not authorized when a newer
	// connection needed its slot.
	ErrEvicted = errors.New("stratum: not authorized, slot given to a new connection")
	// ErrBanned ends the sessions of an address that has just been banned.
	ErrBanned = errors.New("stratum: address banned")
)

// GateLimits are a Gate's caps; 0 is no cap.
type GateLimits struct {
	// MaxSessions caps the sessions of every Server sharing the Gate.
	MaxSessions int
	// MaxSessionsPerIP caps the sessions of one IPv4 address or IPv6 /64.
	MaxSessionsPerIP int
}

// GateStats is a snapshot of a Gate.
type GateStats struct {
	Limits GateLimits
	// Open sessions, of which Unauthorized have not authorized yet; IPs
	// is the client keys among them.
	Open, Unauthorized, IPs int
	// RefusedTotal and RefusedPerIP count connections closed at accept
	// for a full cap with no unauthorized session to give way;
	// RefusedBanned those from a banned address; Evicted the
	// unauthorized sessions ended to make room.
	RefusedTotal, RefusedPerIP, RefusedBanned, Evicted uint64
}

// A Gate decides which connections become sessions. One Gate shared by
// several Servers (the plain and the TLS port) counts their sessions
// together, so a cap holds whichever port an attacker uses.
//
// A connection is cheap to open and costs the pool a descriptor, so when
// a cap is reached the oldest session that has not yet authorized gives
// way to the new one: an honest miner authorizes within its first round
// trip, a connection that sits unauthorized is a scanner or an attacker
// holding slots. Only when every session under the cap has authorized is
// the new connection refused.
type Gate struct {
	limits GateLimits
	// Banned, when set before serving, refuses connections from a banned
	// address at accept. It runs on the accept loop: it must be quick.
	Banned func(key netip.Prefix) bool

	mu     sync.Mutex
	open   int
	peers  map[netip.Prefix]*gatePeer
	unauth gateList // every unauthorized session, oldest first

	refusedTotal, refusedPerIP, refusedBanned, evicted atomic.Uint64
}

// gatePeer is one client key's sessions.
type gatePeer struct {
	all    map[*GateSlot]struct{}
	unauth gateList // this key's unauthorized sessions, oldest first
}

// A GateSlot is one connection's place in a Gate. A Session has one; so
// has a Stratum V2 connection (pool/sv2), so that one Gate caps the
// pool's connections on every port, V1 and V2 alike.
type GateSlot struct {
	key netip.Prefix
	// close ends the connection (evicted, or its address banned); it is
	// called without the Gate's lock and must not block.
	close func(error)
	// Under the Gate's lock: whether it counts the connection, whether
	// the connection is in its unauthorized lists, and its links in them.
	gated    bool
	unauthed bool
	links    [2][2]*GateSlot
}

// NewGateSlot is a slot for a connection from client key key (see
// connlimit.KeyOf), ended by close.
func NewGateSlot(key netip.Prefix, close func(error)) *GateSlot {
	return &GateSlot{key: key, close: close}
}

// Key is the connection's client key.
func (s *GateSlot) Key() netip.Prefix { return s.key }

// NewGate returns a Gate with the given caps.
func NewGate(l GateLimits) *Gate {
	return &Gate{limits: l, peers: make(map[netip.Prefix]*gatePeer)}
}

// Limits returns the caps in force.
func (g *Gate) Limits() GateLimits { return g.limits }

// Stats reports the current counts.
func (g *Gate) Stats() GateStats {
	g.mu.Lock()
	st := GateStats{Limits: g.limits, Open: g.open, Unauthorized: g.unauth.n, IPs: len(g.peers)}
	g.mu.Unlock()
	st.RefusedTotal = g.refusedTotal.Load()
	st.RefusedPerIP = g.refusedPerIP.Load()
	st.RefusedBanned = g.refusedBanned.Load()
	st.Evicted = g.evicted.Load()
	return st
}

// Admit takes a new connection's slot in, or reports why not (the
// connection must then be closed). The connections it evicts to make
// room have been ended (their close called) when it returns.
func (g *Gate) Admit(s *GateSlot) error {
	evict, err := g.admit(s)
	for _, v := range evict {
		v.close(ErrEvicted)
	}
	return err
}

func (g *Gate) admit(s *GateSlot) (evict []*GateSlot, refused error) {
	if g.Banned != nil && g.Banned(s.key) {
		g.refusedBanned.Add(1)
		return nil, ErrBanned
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	p := g.peers[s.key]
	if l := g.limits.MaxSessionsPerIP; l > 0 && p != nil && len(p.all) >= l {
		v := p.unauth.head
		if v == nil {
			g.refusedPerIP.Add(1)
			return nil, errPerIPCap
		}
		g.removeLocked(v)
		evict = append(evict, v)
	}
	if l := g.limits.MaxSessions; l > 0 && g.open >= l {
		v := g.unauth.head
		if v == nil {
			g.refusedTotal.Add(1)
			return evict, errTotalCap
		}
		g.removeLocked(v)
		evict = append(evict, v)
	}
	// Looked up again: an eviction above may have removed the peer.
	if p = g.peers[s.key]; p == nil {
		p = &gatePeer{all: make(map[*GateSlot]struct{})}
		g.peers[s.key] = p
	}
	p.all[s] = struct{}{}
	g.open++
	// A connection is new here: it has not authorized yet.
	s.gated, s.unauthed = true, true
	g.unauth.push(s, globalLinks)
	p.unauth.push(s, peerLinks)
	g.evicted.Add(uint64(len(evict)))
	return evict, nil
}

var (
	errTotalCap = errors.New("stratum: session cap reached")
	errPerIPCap = errors.New("stratum: per-address session cap reached")
)

// Authorized moves s out of the unauthorized lists: from now on it keeps
// its slot.
func (g *Gate) Authorized(s *GateSlot) {
	g.mu.Lock()
	if s.unauthed {
		g.unauthLocked(s)
	}
	g.mu.Unlock()
}

func (g *Gate) unauthLocked(s *GateSlot) {
	s.unauthed = false
	g.unauth.remove(s, globalLinks)
	if p := g.peers[s.key]; p != nil {
		p.unauth.remove(s, peerLinks)
	}
}

// Release gives s's slot back when its connection has ended (once;
// eviction may have done it already).
func (g *Gate) Release(s *GateSlot) {
	g.mu.Lock()
	if s.gated {
		g.removeLocked(s)
	}
	g.mu.Unlock()
}

func (g *Gate) removeLocked(s *GateSlot) {
	s.gated = false
	if s.unauthed {
		g.unauthLocked(s)
	}
	g.open--
	if p := g.peers[s.key]; p != nil {
		delete(p.all, s)
		if len(p.all) == 0 {
			delete(g.peers, s.key)
		}
	}
}

// CloseKey ends every session of a client key (an address just banned)
// and reports how many there were.
func (g *Gate) CloseKey(key netip.Prefix, err error) int {
	g.mu.Lock()
	var victims []*GateSlot
	if p := g.peers[key]; p != nil {
		for s := range p.all {
			victims = append(victims, s)
		}
	}
	g.mu.Unlock()
	for _, s := range victims {
		s.close(err)
	}
	return len(victims)
}

// RefuseConn closes a connection the Gate did not take, with a reset:
// the refused peer holds nothing of ours while it notices.
func RefuseConn(c net.Conn) {
	if tc, ok := c.(interface{ NetConn() net.Conn }); ok {
		c = tc.NetConn() // TLS: no handshake for a connection we refuse
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// keyOf is the client key sessions are counted and banned under.
func keyOf(c net.Conn) netip.Prefix { return connlimit.KeyOf(c.RemoteAddr()) }

// gateList is an intrusive doubly linked list of sessions: a session
// is in at most two (the Gate's and its peer's) and an idle session must
// not pay for list elements of its own.
type gateList struct {
	head, tail *GateSlot
	n          int
}

type listLinks int

const (
	globalLinks listLinks = iota
	peerLinks
)

func (s *GateSlot) linksOf(which listLinks) *[2]*GateSlot { return &s.links[which] }

func (l *gateList) push(s *GateSlot, which listLinks) {
	ln := s.linksOf(which)
	ln[0], ln[1] = l.tail, nil
	if l.tail != nil {
		l.tail.linksOf(which)[1] = s
	} else {
		l.head = s
	}
	l.tail = s
	l.n++
}

func (l *gateList) remove(s *GateSlot, which listLinks) {
	ln := s.linksOf(which)
	prev, next := ln[0], ln[1]
	if prev != nil {
		prev.linksOf(which)[1] = next
	} else if l.head == s {
		l.head = next
	} else {
		return // not in this list
	}
	if next != nil {
		next.linksOf(which)[0] = prev
	} else {
		l.tail = prev
	}
	ln[0], ln[1] = nil, nil
	l.n--
}
