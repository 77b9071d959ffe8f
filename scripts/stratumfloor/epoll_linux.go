package main

import (
	"log"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// eventLoop answers its sockets in place: level-triggered, one read per
// readiness, so a socket is never read only to find it empty.
type eventLoop struct {
	epfd  int
	mu    sync.Mutex
	conns map[int32]*epollConn
}

type epollConn struct {
	*conn
	f *os.File // owns the descriptor
}

func serveEpoll(ln net.Listener, loops int) error {
	ls := make([]*eventLoop, loops)
	for i := range ls {
		epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if err != nil {
			log.Fatal(err)
		}
		ls[i] = &eventLoop{epfd: epfd, conns: map[int32]*epollConn{}}
		go ls[i].run()
	}
	for k := 0; ; k++ {
		nc, err := ln.Accept()
		if err != nil {
			return err
		}
		// A descriptor of our own, out of the runtime's poller.
		f, err := nc.(*net.TCPConn).File()
		nc.Close()
		if err != nil {
			log.Print(err)
			continue
		}
		fd := int(f.Fd())
		if err := syscall.SetNonblock(fd, true); err != nil {
			log.Fatal(err)
		}
		l := ls[k%loops]
		l.mu.Lock()
		l.conns[int32(fd)] = &epollConn{conn: newConn(), f: f}
		l.mu.Unlock()
		if err := syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_ADD, fd,
			&syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(fd)}); err != nil {
			log.Fatal(err)
		}
	}
}

func (l *eventLoop) run() {
	events := make([]syscall.EpollEvent, 256)
	for {
		n, err := syscall.EpollWait(l.epfd, events, -1)
		if err != nil {
			if err == syscall.EINTR {
				continue
			}
			log.Fatal(err)
		}
		l.mu.Lock()
		for _, ev := range events[:n] {
			c := l.conns[ev.Fd]
			if c == nil {
				continue
			}
			fd := int(ev.Fd)
			m, err := syscall.Read(fd, c.buf[c.end:])
			if err == syscall.EAGAIN || err == syscall.EINTR {
				continue
			}
			if err != nil || m == 0 {
				_ = syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_DEL, fd, nil)
				c.f.Close()
				delete(l.conns, ev.Fd)
				continue
			}
			c.lines(m)
			writeAll(fd, c.answers)
		}
		l.mu.Unlock()
	}
}

// writeAll writes b, waiting out a full socket: this server measures the
// cost of answering, and a full socket never happens at the loads it is
// run with; if one does, the loop waits rather than drop a reply.
func writeAll(fd int, b []byte) {
	for len(b) > 0 {
		n, err := syscall.Write(fd, b)
		switch {
		case err == syscall.EAGAIN:
			time.Sleep(50 * time.Microsecond)
		case err == syscall.EINTR:
		case err != nil:
			return // the read side sees the error next
		default:
			b = b[n:]
		}
	}
}
