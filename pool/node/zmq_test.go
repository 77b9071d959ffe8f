package node

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"
)

// zmqPublisher stands in for Bitcoin Core's -zmqpubhashblock: a PUB socket
// of the library the pool subscribes with, sending Core's three frames.
type zmqPublisher struct {
	t    *testing.T
	pub  zmq4.Socket
	addr string
	seq  uint32
}

func newZMQPublisher(t *testing.T, addr string) *zmqPublisher {
	t.Helper()
	pub := zmq4.NewPub(context.Background())
	if err := pub.Listen("tcp://" + addr); err != nil {
		t.Fatalf("ZMQ publisher: %v", err)
	}
	return &zmqPublisher{t: t, pub: pub, addr: pub.Addr().(*net.TCPAddr).String()}
}

func (p *zmqPublisher) endpoint() string { return "tcp://" + p.addr }

// publish sends one hashblock notice for a display-order block hash.
func (p *zmqPublisher) publish(hash string) {
	b, err := hex.DecodeString(hash)
	if err != nil || len(b) != 32 {
		p.t.Fatalf("hash %q", hash)
	}
	seq := make([]byte, 4)
	binary.LittleEndian.PutUint32(seq, p.seq)
	p.seq++
	p.pub.SendMulti(zmq4.NewMsgFrom([]byte("hashblock"), b, seq))
}

// publishUntil publishes hash until what it caused comes out of ch (done
// says when): a new subscription takes a moment to reach the publisher,
// and ZMQ drops what is published before (as Core's does).
func publishUntil[T any](t *testing.T, ctx context.Context, p *zmqPublisher, hash string, ch <-chan T, done func(T) bool) {
	t.Helper()
	for {
		p.publish(hash)
		select {
		case v, ok := <-ch:
			if !ok {
				t.Fatal("channel closed before the notice of " + hash + " came through")
			}
			if done(v) {
				return
			}
		case <-time.After(5 * time.Millisecond):
		case <-ctx.Done():
			t.Fatalf("notice of %s never came through", hash)
		}
	}
}

// sameHash is publishUntil's test for a notice channel.
func sameHash(hash string) func(string) bool { return func(got string) bool { return got == hash } }

func TestSubscribeBlocksReconnects(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	pub := newZMQPublisher(t, "127.0.0.1:0")
	logs := &recordHandler{}
	subCtx, stopSub := context.WithCancel(ctx)
	notices, err := SubscribeBlocks(subCtx, pub.endpoint(), slog.New(logs), 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	publishUntil(t, ctx, pub, tipHash(1), notices, sameHash(tipHash(1)))

	// The publisher goes away (Core restarts) and comes back on the same
	// address: the subscription follows by itself.
	pub.pub.Close()
	for !logs.has("ZMQ block notices unavailable") {
		select {
		case <-ctx.Done():
			t.Fatalf("outage not logged: %v", logs.messages())
		case <-time.After(time.Millisecond):
		}
	}
	pub2 := newZMQPublisher(t, pub.addr)
	defer pub2.pub.Close()
	publishUntil(t, ctx, pub2, tipHash(2), notices, sameHash(tipHash(2)))
	if !logs.has("ZMQ publisher back") {
		t.Errorf("reconnection not logged: %v", logs.messages())
	}

	stopSub()
	for range notices {
	}
}

func TestSubscribeBlocksBadEndpoint(t *testing.T) {
	if _, err := SubscribeBlocks(context.Background(), "http://127.0.0.1:28332", nil, 0); err == nil {
		t.Error("an http:// endpoint accepted for ZMQ")
	}
}

// TestWatchZMQ feeds the watcher from a real ZMQ subscription: a notice of
// a new block fetches a template at once, with long polling off and the
// getbestblockhash fallback too slow to be what found it.
func TestWatchZMQ(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	core := newLongPollCore(t)
	c := newLongPollClient(t, core)
	pub := newZMQPublisher(t, "127.0.0.1:0")
	defer pub.pub.Close()
	notices, err := SubscribeBlocks(ctx, pub.endpoint(), slog.New(&recordHandler{}), 0)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := watch(t, ctx, c, WatchOptions{Refresh: time.Hour, FallbackPollInterval: time.Hour, DisableLongPoll: true,
		Notices: notices})

	receive(t, ctx, out)
	core.mine()
	publishUntil(t, ctx, pub, tipHash(1), out, func(tp *Template) bool {
		if tp.PreviousBlockHash.String() != tipHash(1) {
			t.Fatalf("template on %s after the notice, want %s", tp.PreviousBlockHash.String(), tipHash(1))
		}
		return true
	})
}
