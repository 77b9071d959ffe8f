package connlimit

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"
)

// server accepts on a capped loopback listener and hands each accepted
// connection to the test.
type server struct {
	ln       *Listener
	accepted chan net.Conn
	refused  chan Reason
}

func startServer(t *testing.T, l Limits) *server {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{ln: Wrap(raw, l), accepted: make(chan net.Conn, 16), refused: make(chan Reason, 16)}
	s.ln.OnRefuse = func(_ net.Addr, why Reason) { s.refused <- why }
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := s.ln.Accept()
			if err != nil {
				return
			}
			s.accepted <- c
		}
	}()
	t.Cleanup(func() { s.ln.Close(); <-done })
	return s
}

// dialFrom connects from a given loopback address (all of 127/8 is local
// on Linux), so one machine plays several clients.
func (s *server) dialFrom(t *testing.T, src string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 10 * time.Second}
	c, err := d.Dial("tcp", s.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (s *server) wantAccepted(t *testing.T) net.Conn {
	t.Helper()
	select {
	case c := <-s.accepted:
		t.Cleanup(func() { c.Close() })
		return c
	case why := <-s.refused:
		t.Fatalf("refused (%s), want accepted", why)
	case <-time.After(10 * time.Second):
		t.Fatal("nothing accepted")
	}
	return nil
}

// wantRefused connects from src and waits for the refusal and for the
// client to see its connection end (the reset may come so fast that the
// client already sees it while connecting).
func (s *server) wantRefused(t *testing.T, src string, want Reason) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 10 * time.Second}
	c, dialErr := d.Dial("tcp", s.ln.Addr().String())
	select {
	case why := <-s.refused:
		if why != want {
			t.Fatalf("refused for %s, want %s", why, want)
		}
	case c := <-s.accepted:
		c.Close()
		t.Fatalf("accepted, want refused (%s)", want)
	case <-time.After(10 * time.Second):
		t.Fatal("neither accepted nor refused")
	}
	if dialErr != nil {
		return
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Fatalf("refused connection still open: read %v", err)
	}
}

func TestCaps(t *testing.T) {
	s := startServer(t, Limits{Total: 3, PerIP: 2})
	s.dialFrom(t, "127.0.0.1")
	a1 := s.wantAccepted(t)
	s.dialFrom(t, "127.0.0.1")
	s.wantAccepted(t)
	s.wantRefused(t, "127.0.0.1", RefusedPerIP)

	// Another client still gets in, up to the total.
	s.dialFrom(t, "127.0.0.2")
	s.wantAccepted(t)
	s.wantRefused(t, "127.0.0.3", RefusedTotal)
	st := s.ln.Stats()
	if st.Open != 3 || st.IPs != 2 || st.RefusedPerIP != 1 || st.RefusedTotal != 1 {
		t.Fatalf("stats %+v", st)
	}

	// Closing a connection frees its slot at once, and only once.
	a1.Close()
	a1.Close()
	if st := s.ln.Stats(); st.Open != 2 {
		t.Fatalf("after close: %+v", st)
	}
	s.dialFrom(t, "127.0.0.3")
	s.wantAccepted(t)
	s.wantRefused(t, "127.0.0.4", RefusedTotal)
}

func TestNoLimits(t *testing.T) {
	s := startServer(t, Limits{})
	for range 10 {
		s.dialFrom(t, "127.0.0.1")
		s.wantAccepted(t)
	}
	if st := s.ln.Stats(); st.Open != 10 || st.IPs != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// The accepted connection carries data both ways: the wrapper is
// transparent.
func TestConnIsTransparent(t *testing.T) {
	s := startServer(t, Limits{Total: 1, PerIP: 1})
	c := s.dialFrom(t, "127.0.0.1")
	a := s.wantAccepted(t)
	go a.Write([]byte("hello"))
	b := make([]byte, 5)
	if _, err := io.ReadFull(c, b); err != nil || string(b) != "hello" {
		t.Fatalf("read %q, %v", b, err)
	}
}

func TestKeyOf(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:80":                 "127.0.0.1/32",
		"[::ffff:10.1.2.3]:5":          "10.1.2.3/32",
		"[2001:db8:1:2:3:4:5:6]:443":   "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::1]:443":   "2001:db8:1:2::/64",
		"[fe80::1%eth0]:1":             "fe80::/64",
		"[2001:db8:1:3::1]:443":        "2001:db8:1:3::/64",
		"10.0.0.1":                     "invalid Prefix",
		"not an address":               "invalid Prefix",
		"[::1]:8080":                   "::/64",
		"0.0.0.0:1":                    "0.0.0.0/32",
		"255.255.255.255:65535":        "255.255.255.255/32",
		"[2001:db8::1]:99999999999999": "invalid Prefix",
	} {
		got, _ := KeyOfString(in)
		if got.String() != want {
			t.Errorf("KeyOfString(%q) = %s, want %s", in, got, want)
		}
		if ap, err := netip.ParseAddrPort(in); err == nil {
			if k := KeyOf(net.TCPAddrFromAddrPort(ap)); k != got {
				t.Errorf("KeyOf(%s) = %s, KeyOfString %s", in, k, got)
			}
		}
	}
}

// FuzzKeyOfString: the key comes from a client's address. It never
// panics, and a key is the /32 or /64 that holds the address.
func FuzzKeyOfString(f *testing.F) {
	for _, s := range []string{"127.0.0.1:1", "[::1]:2", "[::ffff:1.2.3.4]:3", "[fe80::1%eth0]:4", "", ":", "[]:1", "1.2.3.4:-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, ok := KeyOfString(s)
		if !ok {
			if k.IsValid() {
				t.Fatalf("%q: not ok but key %s", s, k)
			}
			return
		}
		ap := netip.MustParseAddrPort(s)
		ip := ap.Addr().Unmap().WithZone("")
		if !k.Contains(ip) || (k.Bits() != 32 && k.Bits() != 64) || k.Masked() != k {
			t.Fatalf("%q: key %s", s, k)
		}
	})
}
