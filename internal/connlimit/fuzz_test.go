package connlimit

import (
	"net"
	"net/netip"
	"testing"
)

// fakeConn is an accepted connection from a chosen address. Only its
// address and whether it was closed matter to the Listener.
type fakeConn struct {
	net.Conn // nil: any other method would panic, and none may be called
	remote   net.Addr
	closed   int
}

func (c *fakeConn) RemoteAddr() net.Addr { return c.remote }
func (c *fakeConn) Close() error         { c.closed++; return nil }

// queueListener hands out the queued connections, then reports that it is
// closed, so a Listener whose every pending connection was refused
// returns instead of waiting for more.
type queueListener struct{ q []*fakeConn }

func (l *queueListener) Accept() (net.Conn, error) {
	if len(l.q) == 0 {
		return nil, net.ErrClosed
	}
	c := l.q[0]
	l.q = l.q[1:]
	return c, nil
}
func (l *queueListener) Close() error   { return nil }
func (l *queueListener) Addr() net.Addr { return &net.TCPAddr{} }

// limitAddrs are the clients of FuzzLimits: two IPv4 clients, one of them
// also seen as IPv4-mapped IPv6, two addresses of one IPv6 /64, another
// /64, and an address that is not IP.
var limitAddrs = []net.Addr{
	&net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 1},
	&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.1"), Port: 2},
	&net.TCPAddr{IP: net.IPv4(198, 51, 100, 7), Port: 3},
	&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2::1"), Port: 4},
	&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:ffff::9"), Port: 5},
	&net.TCPAddr{IP: net.ParseIP("2001:db8:1:3::1"), Port: 6},
	&net.UnixAddr{Name: "@pool", Net: "unix"},
}

// limitKeys are the keys limitAddrs must be counted under.
var limitKeys = []netip.Prefix{
	netip.MustParsePrefix("192.0.2.1/32"),
	netip.MustParsePrefix("192.0.2.1/32"),
	netip.MustParsePrefix("198.51.100.7/32"),
	netip.MustParsePrefix("2001:db8:1:2::/64"),
	netip.MustParsePrefix("2001:db8:1:2::/64"),
	netip.MustParsePrefix("2001:db8:1:3::/64"),
	{},
}

// FuzzLimits drives a Listener with arbitrary caps (negative and zero mean
// none) through a sequence of accepts and closes decoded from the input,
// against a model of the counts: a connection is handed out exactly when
// both caps have room, a refused one is closed at once and counted under
// the cap that refused it, a second Close gives nothing back, and Open
// and the per-key counts never go below zero or above the caps.
//
// Each input byte is one event: the high bit set closes a held connection
// (the rest of the byte picks which, twice closes one already closed),
// otherwise a connection arrives from limitAddrs[b%len(limitAddrs)].
func FuzzLimits(f *testing.F) {
	f.Add(2, 1, []byte{0, 1, 2, 3, 4, 5, 6, 0x80, 0, 0x80, 0x80, 3})
	f.Add(0, 0, []byte{0, 0, 0, 0, 0x81, 0x81, 0})
	f.Add(3, -1, []byte{3, 4, 5, 6, 0x82, 6, 6})
	f.Add(-5, 2, []byte{3, 4, 3, 5, 5, 5, 0x80, 3})
	f.Add(1, 1, []byte{6, 6, 0x80, 6})
	f.Fuzz(func(t *testing.T, total, perIP int, events []byte) {
		if len(events) > 512 {
			return
		}
		ql := &queueListener{}
		l := Wrap(ql, Limits{Total: total, PerIP: perIP})
		var refusals []Reason
		l.OnRefuse = func(_ net.Addr, why Reason) { refusals = append(refusals, why) }

		type held struct {
			c      net.Conn
			raw    *fakeConn
			key    netip.Prefix
			closed bool
		}
		var conns []*held
		open, perKey := 0, map[netip.Prefix]int{}
		var refusedTotal, refusedPerIP uint64
		for _, b := range events {
			if b&0x80 != 0 {
				if len(conns) == 0 {
					continue
				}
				h := conns[int(b&0x7f)%len(conns)]
				if err := h.c.Close(); err != nil {
					t.Fatal(err)
				}
				if !h.closed {
					h.closed = true
					open--
					perKey[h.key]--
				}
			} else {
				a, key := limitAddrs[int(b)%len(limitAddrs)], limitKeys[int(b)%len(limitAddrs)]
				raw := &fakeConn{remote: a}
				ql.q = append(ql.q, raw)
				var want Reason
				switch {
				case total > 0 && open >= total:
					want = RefusedTotal
				case perIP > 0 && perKey[key] >= perIP:
					want = RefusedPerIP
				}
				before := len(refusals)
				c, err := l.Accept()
				switch {
				case want == "" && (err != nil || c == nil):
					t.Fatalf("connection %d from %s refused (%v) with %d open, %d from it, caps %d/%d", len(conns), a, err, open, perKey[key], total, perIP)
				case want != "" && err == nil:
					t.Fatalf("connection from %s accepted past the %s cap: %d open, %d from it, caps %d/%d", a, want, open, perKey[key], total, perIP)
				case want != "":
					if len(refusals) != before+1 || refusals[before] != want || raw.closed != 1 {
						t.Fatalf("refusal of %s: heard %v, want %s; closed %d times", a, refusals[before:], want, raw.closed)
					}
					if want == RefusedTotal {
						refusedTotal++
					} else {
						refusedPerIP++
					}
				default:
					if len(refusals) != before || raw.closed != 0 || c.RemoteAddr() != a {
						t.Fatalf("accepted %s: refusals %v, closed %d times", a, refusals[before:], raw.closed)
					}
					open++
					perKey[key]++
					conns = append(conns, &held{c: c, raw: raw, key: key})
				}
			}
			st := l.Stats()
			ips := 0
			for k, n := range perKey {
				if n < 0 || (perIP > 0 && n > perIP) {
					t.Fatalf("%d connections of %s (cap %d)", n, k, perIP)
				}
				if n > 0 {
					ips++
				}
			}
			if st.Open != open || st.IPs != ips || st.Open < 0 || (total > 0 && st.Open > total) ||
				st.RefusedTotal != refusedTotal || st.RefusedPerIP != refusedPerIP || st.Limits != (Limits{total, perIP}) {
				t.Fatalf("stats %+v; want %d open from %d keys, %d/%d refused", st, open, ips, refusedTotal, refusedPerIP)
			}
		}
		for _, h := range conns {
			if h.closed != (h.raw.closed > 0) {
				t.Fatalf("connection closed by the server: %v, underneath: %d times", h.closed, h.raw.closed)
			}
		}
	})
}
