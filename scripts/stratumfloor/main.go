// Command stratumfloor is the least a Stratum V1 server can do per share:
// read the line and write "accepted", nothing checked, nothing stored. Run
// hashforge loadtest against it and against hashforge serve, same load,
// same run, and the difference is what the pool's work costs; what is
// left is what this machine's sockets, syscalls and scheduler cost. It is
// a measuring stick (docs/performance.md), not a pool.
//
//	go run ./scripts/stratumfloor -mode goroutine -addr 127.0.0.1:14100
//	hashforge loadtest --url stratum+tcp://127.0.0.1:14100 --miners 1000 \
//	    --rate 50 --duration 15s --json --pool-pid PID
//
// -mode goroutine is Go's usual server (a goroutine per connection on the
// runtime's netpoller), -mode epoll (Linux) an event loop per core that
// reads and answers each ready socket in place, as gnet-style servers do.
//
// With -broadcast D (goroutine mode) it also sends a new job to every
// session each D, from one writer goroutine per core, and prints how long
// writing it to every socket took: the floor under a pool's notify
// fan-out (hashforge_notify_fanout_seconds).
package main

import (
	"bytes"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// work is the difficulty and first job every session gets after its
// authorize: a tiny difficulty, so that the load generator's grinding
// costs about what it does against a pool at difficulty 1e-9.
var work = append([]byte(`{"id":null,"method":"mining.set_difficulty","params":[1e-9]}`+"\n"), jobLine(1)...)

// jobLine is a clean mining.notify for job n on a previous block named
// after it.
func jobLine(n int) []byte {
	return fmt.Appendf(nil, `{"id":null,"method":"mining.notify","params":["%d","%064x",`+
		`"01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff0a03e81d0e",`+
		`"ffffffff0100f2052a01000000016a00000000",[],"20000000","1d00ffff","6b06489e",true]}`+"\n", n, n)
}

var sessions atomic.Uint32

// requestID is the line's id as written, or null.
func requestID(line []byte) []byte {
	i := bytes.Index(line, []byte(`"id":`))
	if i < 0 {
		return []byte("null")
	}
	j := i + len(`"id":`)
	for j < len(line) && line[j] == ' ' {
		j++
	}
	k := j
	for k < len(line) && line[k] >= '0' && line[k] <= '9' {
		k++
	}
	if k == j {
		return []byte("null")
	}
	return line[j:k]
}

// answer appends the reply to one request line: subscribe and authorize
// as a pool would (work follows the authorize), anything else accepted.
func answer(out, line []byte, extranonce1 uint32) []byte {
	switch {
	case bytes.Contains(line, []byte(`"mining.subscribe"`)):
		return fmt.Appendf(out, `{"id":%s,"result":[[["mining.notify","1"]],"%08x",4],"error":null}`+"\n",
			requestID(line), extranonce1)
	case bytes.Contains(line, []byte(`"mining.authorize"`)):
		out = fmt.Appendf(out, `{"id":%s,"result":true,"error":null}`+"\n", requestID(line))
		return append(out, work...)
	}
	out = append(out, `{"id":`...)
	out = append(out, requestID(line)...)
	return append(out, `,"result":true,"error":null}`+"\n"...)
}

// conn is one session's buffers: answers accumulates the replies to
// every line of one read, written together.
type conn struct {
	extranonce1 uint32
	buf         []byte
	end         int
	answers     []byte
}

func newConn() *conn {
	return &conn{extranonce1: sessions.Add(1), buf: make([]byte, 4096)}
}

// lines answers every whole line in buf[:end+n] and keeps the rest.
func (c *conn) lines(n int) {
	c.end += n
	c.answers = c.answers[:0]
	start := 0
	for {
		i := bytes.IndexByte(c.buf[start:c.end], '\n')
		if i < 0 {
			break
		}
		c.answers = answer(c.answers, c.buf[start:start+i], c.extranonce1)
		start += i + 1
	}
	c.end = copy(c.buf, c.buf[start:c.end])
	if c.end == len(c.buf) {
		c.end = 0 // a line longer than the buffer: dropped
	}
}

// registry is the connections a broadcast goes to.
type registry struct {
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func (r *registry) add(c net.Conn) {
	r.mu.Lock()
	r.conns[c] = struct{}{}
	r.mu.Unlock()
}

func (r *registry) remove(c net.Conn) {
	r.mu.Lock()
	delete(r.conns, c)
	r.mu.Unlock()
}

// broadcast writes a new job to every connection, the list split between
// one writer per core, and prints how long until every write returned.
func (r *registry) broadcast(job int) {
	line := jobLine(job)
	r.mu.Lock()
	conns := make([]net.Conn, 0, len(r.conns))
	for c := range r.conns {
		conns = append(conns, c)
	}
	r.mu.Unlock()
	writers := runtime.GOMAXPROCS(0)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := w; i < len(conns); i += writers {
				_, _ = conns[i].Write(line)
			}
		})
	}
	wg.Wait()
	fmt.Printf("broadcast job %d to %d sessions: %.2f ms\n", job, len(conns), float64(time.Since(start).Microseconds())/1000)
}

func serveGoroutines(ln net.Listener, every time.Duration) error {
	reg := &registry{conns: map[net.Conn]struct{}{}}
	if every > 0 {
		go func() {
			for job := 2; ; job++ {
				time.Sleep(every)
				reg.broadcast(job)
			}
		}()
	}
	for {
		nc, err := ln.Accept()
		if err != nil {
			return err
		}
		reg.add(nc)
		go func() {
			defer reg.remove(nc)
			defer nc.Close()
			c := newConn()
			for {
				n, err := nc.Read(c.buf[c.end:])
				if err != nil {
					return
				}
				c.lines(n)
				if len(c.answers) > 0 {
					if _, err := nc.Write(c.answers); err != nil {
						return
					}
				}
			}
		}()
	}
}

func main() {
	addr := flag.String("addr", "127.0.0.1:14100", "listen address")
	mode := flag.String("mode", "goroutine", "goroutine (a goroutine per connection) or epoll (an event loop per core; Linux)")
	loops := flag.Int("loops", runtime.GOMAXPROCS(0), "event loops for -mode epoll")
	every := flag.Duration("broadcast", 0, "send every session a new job this often and print how long it took (goroutine mode); 0: never")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("stratumfloor pid", os.Getpid(), "mode", *mode, "listening on", strconv.Quote(ln.Addr().String()))
	switch *mode {
	case "goroutine":
		err = serveGoroutines(ln, *every)
	case "epoll":
		err = serveEpoll(ln, *loops)
	default:
		log.Fatalf("unknown -mode %q", *mode)
	}
	log.Fatal(err)
}
