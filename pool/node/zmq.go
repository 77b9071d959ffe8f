package node

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/go-zeromq/zmq4"

	"github.com/hashforge/hashforge/internal/backoff"
)

// zmqTopicHashBlock is Bitcoin Core's new-block notice (-zmqpubhashblock):
// three frames, the topic, the 32-byte block hash in display order, and a
// 4-byte little-endian sequence number per topic.
const zmqTopicHashBlock = "hashblock"

// SubscribeBlocks subscribes to a ZMQ publisher's `hashblock` notices
// (Bitcoin Core's -zmqpubhashblock=tcp://…) and sends each block hash,
// display-order hex, on the returned channel, for WatchOptions.Notices.
// The channel holds the newest hash only: a notice not yet taken is
// replaced by a newer one, since only the tip matters. When the publisher
// cannot be reached or goes away, the subscription is redialled with
// backoff (up to maxBackoff, 10 s when 0) and the outage logged; the
// watcher's getbestblockhash fallback covers it meanwhile. The channel is
// closed when ctx ends. endpoint is a ZMQ address ("tcp://host:port").
func SubscribeBlocks(ctx context.Context, endpoint string, log *slog.Logger, maxBackoff time.Duration) (<-chan string, error) {
	if !strings.HasPrefix(endpoint, "tcp://") && !strings.HasPrefix(endpoint, "ipc://") {
		return nil, fmt.Errorf("ZMQ endpoint %q: want tcp://host:port (or ipc://path)", endpoint)
	}
	if log == nil {
		log = slog.Default()
	}
	if maxBackoff <= 0 {
		maxBackoff = 10 * time.Second
	}
	out := make(chan string, 1)
	z := &zmqSub{endpoint: endpoint, log: log.With("zmq", endpoint), maxBackoff: maxBackoff, out: out}
	go z.run(ctx)
	return out, nil
}

type zmqSub struct {
	endpoint   string
	log        *slog.Logger
	maxBackoff time.Duration
	out        chan string
	seq        uint32
	seqKnown   bool
}

func (z *zmqSub) run(ctx context.Context) {
	defer close(z.out)
	retry := backoff.Backoff{Min: 250 * time.Millisecond, Max: z.maxBackoff}
	var downSince time.Time
	for ctx.Err() == nil {
		err := z.session(ctx, func() {
			if !downSince.IsZero() {
				z.log.Info("ZMQ publisher back", "down_for", time.Since(downSince).Round(time.Millisecond))
				downSince = time.Time{}
			}
			retry.Reset()
		})
		if ctx.Err() != nil {
			return
		}
		delay := retry.Next()
		if downSince.IsZero() {
			downSince = time.Now()
			z.log.Warn("ZMQ block notices unavailable, reconnecting; polling getbestblockhash meanwhile", "in", delay, "err", err)
		} else {
			z.log.Debug("ZMQ reconnect failed", "in", delay, "err", err)
		}
		if !backoff.Sleep(ctx, delay) {
			return
		}
	}
}

// session dials the publisher and forwards notices until the connection
// fails (returned) or ctx ends. connected is called once it is up.
func (z *zmqSub) session(ctx context.Context, connected func()) error {
	sub := zmq4.NewSub(ctx, zmq4.WithDialerMaxRetries(0),
		zmq4.WithLogger(slog.NewLogLogger(z.log.Handler(), slog.LevelDebug)))
	defer sub.Close()
	if err := sub.SetOption(zmq4.OptionSubscribe, zmqTopicHashBlock); err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	if err := sub.Dial(z.endpoint); err != nil {
		return err
	}
	connected()
	z.log.Info("subscribed to ZMQ block notices", "topic", zmqTopicHashBlock)
	for {
		msg, err := sub.Recv()
		if err != nil {
			return err
		}
		hash, ok := z.parse(msg.Frames)
		if !ok {
			continue
		}
		select {
		case z.out <- hash:
		default:
			// Replace the notice nobody took yet with the newer one.
			select {
			case <-z.out:
			default:
			}
			z.out <- hash
		}
	}
}

// parse reads a hashblock message; it logs and skips anything else.
func (z *zmqSub) parse(frames [][]byte) (string, bool) {
	if len(frames) < 2 || string(frames[0]) != zmqTopicHashBlock || len(frames[1]) != 32 {
		z.log.Debug("ZMQ message skipped: not a hashblock notice", "frames", len(frames))
		return "", false
	}
	if len(frames) >= 3 && len(frames[2]) == 4 {
		seq := binary.LittleEndian.Uint32(frames[2])
		if z.seqKnown && seq != z.seq+1 {
			z.log.Debug("ZMQ hashblock notices missed", "last_seq", z.seq, "seq", seq)
		}
		z.seq, z.seqKnown = seq, true
	}
	return hex.EncodeToString(frames[1]), true
}
