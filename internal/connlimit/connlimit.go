// Package connlimit caps the connections a listener hands out: in total
// and per client address. A connection past a cap is accepted and closed
// at once (with a reset, so it costs the server no lingering state), and
// counted; the accept loop never waits for room. Without a cap, a client
// that opens connections and never closes them takes every file
// descriptor of the process, and with them every other listener, the
// node's and the database's connections.
package connlimit

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// Limits are the caps; 0 is no cap.
type Limits struct {
	Total int
	// PerIP caps the connections of one client IPv4 address or one IPv6
	// /64 (a single host usually owns a whole /64, so counting its
	// addresses one by one would be no cap at all).
	PerIP int
}

// Reason says which cap refused a connection.
type Reason string

const (
	RefusedTotal Reason = "total"
	RefusedPerIP Reason = "per_ip"
)

// Stats is a snapshot of a Listener.
type Stats struct {
	Limits Limits
	// Open is the connections handed out and not yet closed; IPs the
	// client keys (addresses or /64s) among them.
	Open, IPs int
	// Refused counts connections closed at accept, by cap.
	RefusedTotal, RefusedPerIP uint64
}

// Listener wraps a net.Listener with Limits. Connections it returns must
// be closed (as net/http and websocket libraries do) to give their slot
// back.
type Listener struct {
	net.Listener
	limits Limits
	// OnRefuse, when set before the first Accept, hears of every refusal.
	// It runs on the accept loop: it must not block.
	OnRefuse func(remote net.Addr, why Reason)

	mu    sync.Mutex
	open  int
	perIP map[netip.Prefix]int

	refusedTotal, refusedPerIP atomic.Uint64
}

// Wrap caps ln's connections.
func Wrap(ln net.Listener, l Limits) *Listener {
	return &Listener{Listener: ln, limits: l, perIP: make(map[netip.Prefix]int)}
}

// Accept returns the next connection within the limits. Connections
// beyond them are closed here and never returned; errors are the wrapped
// listener's.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key := KeyOf(c.RemoteAddr())
		if why := l.admit(key); why != "" {
			l.refuse(c, why)
			continue
		}
		return &conn{Conn: c, l: l, key: key}, nil
	}
}

func (l *Listener) admit(key netip.Prefix) Reason {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.limits.Total > 0 && l.open >= l.limits.Total {
		return RefusedTotal
	}
	if l.limits.PerIP > 0 && l.perIP[key] >= l.limits.PerIP {
		return RefusedPerIP
	}
	l.open++
	l.perIP[key]++
	return ""
}

func (l *Listener) release(key netip.Prefix) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if n := l.perIP[key] - 1; n > 0 {
		l.perIP[key] = n
	} else {
		delete(l.perIP, key)
	}
}

func (l *Listener) refuse(c net.Conn, why Reason) {
	if why == RefusedTotal {
		l.refusedTotal.Add(1)
	} else {
		l.refusedPerIP.Add(1)
	}
	if l.OnRefuse != nil {
		l.OnRefuse(c.RemoteAddr(), why)
	}
	// A reset rather than a FIN: no TIME_WAIT on our side, and the client
	// learns at once instead of on its first write.
	if tc, ok := c.(interface{ SetLinger(int) error }); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// Stats reports the current counts.
func (l *Listener) Stats() Stats {
	l.mu.Lock()
	st := Stats{Limits: l.limits, Open: l.open, IPs: len(l.perIP)}
	l.mu.Unlock()
	st.RefusedTotal, st.RefusedPerIP = l.refusedTotal.Load(), l.refusedPerIP.Load()
	return st
}

type conn struct {
	net.Conn
	l    *Listener
	key  netip.Prefix
	once sync.Once
}

// Close gives the slot back before closing, so a client that has seen its
// connection end finds the slot free when it connects again.
func (c *conn) Close() error {
	c.once.Do(func() { c.l.release(c.key) })
	return c.Conn.Close()
}

// KeyOf is the client key of a remote address: the IPv4 address, or the
// IPv6 /64. Addresses that are not IP (a Unix socket) all share the zero
// key.
func KeyOf(a net.Addr) netip.Prefix {
	var ip netip.Addr
	switch a := a.(type) {
	case *net.TCPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	case *net.UDPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	default:
		if a == nil {
			return netip.Prefix{}
		}
		ap, err := netip.ParseAddrPort(a.String())
		if err != nil {
			return netip.Prefix{}
		}
		ip = ap.Addr()
	}
	return KeyOfIP(ip)
}

// KeyOfString is KeyOf for an "ip:port" string such as
// http.Request.RemoteAddr; ok is false when s is not one.
func KeyOfString(s string) (key netip.Prefix, ok bool) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.Prefix{}, false
	}
	return KeyOfIP(ap.Addr()), true
}

// KeyOfIP is the client key of an IP address: IPv4 (an IPv4-mapped IPv6
// address counts as IPv4) as itself, IPv6 as its /64.
func KeyOfIP(ip netip.Addr) netip.Prefix {
	if !ip.IsValid() {
		return netip.Prefix{}
	}
	// An IPv4 client seen through a dual-stack socket is ::ffff:a.b.c.d.
	ip = ip.Unmap().WithZone("")
	if ip.Is4() {
		return netip.PrefixFrom(ip, 32)
	}
	p, _ := ip.Prefix(64)
	return p
}
