package main

import (
	"bufio"
	"net"
	"strings"
	"testing"
)

// The floor answers as a pool would, or the load generator's numbers
// against it would measure something else.
func TestFloorAnswersLikeAPool(t *testing.T) {
	for _, mode := range []string{"goroutine", "epoll"} {
		t.Run(mode, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			if mode == "epoll" {
				go func() { _ = serveEpoll(ln, 1) }()
			} else {
				go func() { _ = serveGoroutines(ln, 0) }()
			}
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// Two requests in one write, the third split across two.
			send := []string{
				`{"id":1,"method":"mining.subscribe","params":["t"]}` + "\n" + `{"id":2,"method":"mining.authorize","params":["a","x"]}` + "\n",
				`{"id":3,"method":"mining.submit","params":["a","1",`,
				`"00000000","6b06489e","00000000"]}` + "\n",
			}
			for _, s := range send {
				if _, err := c.Write([]byte(s)); err != nil {
					t.Fatal(err)
				}
			}
			want := []string{`{"id":1,"result":[[["mining.notify","1"]],"`, `{"id":2,"result":true,"error":null}`,
				`{"id":null,"method":"mining.set_difficulty"`, `{"id":null,"method":"mining.notify"`, `{"id":3,"result":true,"error":null}`}
			r := bufio.NewReader(c)
			for _, w := range want {
				line, err := r.ReadString('\n')
				if err != nil {
					t.Fatal(err)
				}
				if !strings.HasPrefix(line, w) {
					t.Fatalf("got %q, want a line starting %q", line, w)
				}
			}
		})
	}
}
