package web

import (
	"context"
	"encoding/json"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/hashforge/hashforge/internal/connlimit"
	"github.com/hashforge/hashforge/pool"
)

// Live feed tuning.
const (
	// clientQueue is how many messages may wait for one websocket
	// client. A client that lets it fill up is dropped: the feed moves on
	// without it, and it reconnects and reloads the state over the API.
	clientQueue = 256
	// Clients only ever send pongs and a close; anything bigger is abuse.
	maxClientMessage = 512
)

// liveTiming is the feed's clock: defaultTiming in production, shorter in
// tests (a ping timeout test cannot wait a minute).
type liveTiming struct {
	// statsEvery is the cadence of "stats" messages (hashrate, workers,
	// shares), sent only while someone listens.
	statsEvery time.Duration
	// writeWait bounds one write of a message to a client.
	writeWait time.Duration
	// A client that answers no ping for pongWait is gone (a laptop that
	// went to sleep keeps the TCP connection open for hours). Pings go
	// out every pingPeriod, well inside pongWait.
	pongWait, pingPeriod time.Duration
	// closeWait bounds the close frame sent to a dropped client.
	closeWait time.Duration
}

var defaultTiming = liveTiming{
	statsEvery: 5 * time.Second,
	writeWait:  10 * time.Second,
	pongWait:   60 * time.Second,
	pingPeriod: 25 * time.Second,
	closeWait:  time.Second,
}

// wsMessage is every message of the feed: {"type": ..., "data": ...}.
//
//	stats   statsResponse, every statsEvery
//	block   blockJSON, when a block was submitted (accepted or not)
//	job     jobJSON, when a new job went out to the miners
//	worker  workerEventJSON, a worker going on or off line; sent only to
//	        clients that asked for it with ?address=<that address> or
//	        ?workers=all, so a reconnect storm of thousands of miners does
//	        not flood every dashboard
type wsMessage struct {
	Type string `json:"type"`
	Data any    `json:"data"`
}

type jobJSON struct {
	ID                string    `json:"id"`
	Height            int64     `json:"height"`
	Clean             bool      `json:"clean"`
	NetworkDifficulty float64   `json:"network_difficulty"`
	Transactions      int       `json:"transactions"`
	Sessions          int       `json:"sessions"`
	FanOutMillis      float64   `json:"fanout_ms"`
	Time              time.Time `json:"time"`
}

type workerEventJSON struct {
	Event   string    `json:"event"` // "up" or "down"
	Address string    `json:"address"`
	Worker  string    `json:"worker"`
	Time    time.Time `json:"time"`
}

type hub struct {
	s        *Server
	upgrader websocket.Upgrader
	timing   liveTiming // set before Run and before the first client
	// closers are the goroutines saying goodbye to dropped clients.
	closers sync.WaitGroup

	mu      sync.Mutex
	clients map[*client]struct{}
	// Feed slots taken, in all and per client key (connlimit.KeyOf): a
	// slot is taken before the upgrade and given back when the client
	// goes, so a burst of upgrades cannot overshoot the caps.
	slots  int
	perIP  map[netip.Prefix]int
	closed bool
}

type client struct {
	conn *websocket.Conn
	key  netip.Prefix // the client's slot
	send chan []byte
	// Which worker events this client wants: allWorkers, or those of
	// address.
	address    string
	allWorkers bool

	dropOnce sync.Once
	gone     chan struct{} // closed when the client is dropped or leaves
}

func newHub(s *Server) *hub {
	return &hub{
		s:       s,
		timing:  defaultTiming,
		clients: make(map[*client]struct{}),
		perIP:   make(map[netip.Prefix]int),
		// The default CheckOrigin refuses cross-origin upgrades: another
		// site's page must not read this feed with a visitor's browser.
		upgrader: websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 4096},
	}
}

func (h *hub) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.clients)
}

// Why a feed was refused, as hashforge_ws_refused_total labels it.
const (
	feedFull  connlimit.Reason = "full"
	feedPerIP connlimit.Reason = connlimit.RefusedPerIP
)

// take reserves a feed slot for key, or says which cap is in the way.
func (h *hub) take(key netip.Prefix) connlimit.Reason {
	l := h.s.cfg.Limits
	h.mu.Lock()
	defer h.mu.Unlock()
	if l.MaxFeeds > 0 && h.slots >= l.MaxFeeds {
		return feedFull
	}
	if l.MaxFeedsPerIP > 0 && h.perIP[key] >= l.MaxFeedsPerIP {
		return feedPerIP
	}
	h.slots++
	h.perIP[key]++
	return ""
}

func (h *hub) give(key netip.Prefix) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.giveLocked(key)
}

func (h *hub) giveLocked(key netip.Prefix) {
	h.slots--
	if n := h.perIP[key] - 1; n > 0 {
		h.perIP[key] = n
	} else {
		delete(h.perIP, key)
	}
}

func (h *hub) serveWS(w http.ResponseWriter, r *http.Request) {
	c := &client{send: make(chan []byte, clientQueue), gone: make(chan struct{})}
	q := r.URL.Query()
	if raw := q.Get("address"); raw != "" {
		addr, err := parseAddress(raw, h.s.cfg.Network)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		c.address = addr
	}
	switch q.Get("workers") {
	case "":
	case "all":
		c.allWorkers = true
	default:
		writeError(w, http.StatusBadRequest, "workers must be \"all\" or absent")
		return
	}
	// The caps are checked before the upgrade: a plain GET of this URL
	// learns whether the feed has room, which is how the dashboard tells
	// "full" from "down" (a browser's WebSocket hides the status).
	c.key, _ = connlimit.KeyOfString(r.RemoteAddr)
	if why := h.take(c.key); why != "" {
		h.s.metrics.wsRefused.WithLabelValues(string(why)).Inc()
		h.s.logRefusal(&h.s.feedRefusalLogged, "live feed refused: limit reached", why, r.RemoteAddr)
		w.Header().Set("Retry-After", strconv.Itoa(int(h.s.cfg.Limits.FeedPollInterval.Seconds()+1)))
		if why == feedFull {
			writeError(w, http.StatusServiceUnavailable, "live feed full")
		} else {
			writeError(w, http.StatusTooManyRequests, "too many live feeds from this address")
		}
		return
	}
	conn, err := h.upgrader.Upgrade(w, r, nil)
	if err != nil {
		h.give(c.key)
		return // the upgrader has answered the client already
	}
	// The http.Server's read and write deadlines (ReadTimeout,
	// WriteTimeout) stay on a hijacked connection: a feed would be cut
	// when they pass. From here the feed's own deadlines rule: pongWait
	// for reads, writeWait for each write.
	conn.NetConn().SetDeadline(time.Time{})
	c.conn = conn
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		h.give(c.key)
		conn.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseGoingAway, "server shutting down"), time.Now().Add(h.timing.closeWait))
		conn.Close()
		return
	}
	h.clients[c] = struct{}{}
	h.mu.Unlock()
	h.s.metrics.wsConnects.Inc()

	go h.writeLoop(c)
	h.readLoop(c)
}

// readLoop keeps the read deadline moving on pongs and notices the client
// leaving. It runs on the HTTP handler's goroutine.
func (h *hub) readLoop(c *client) {
	defer h.drop(c, websocket.CloseNormalClosure, "")
	c.conn.SetReadLimit(maxClientMessage)
	pongWait := h.timing.pongWait
	c.conn.SetReadDeadline(time.Now().Add(pongWait))
	c.conn.SetPongHandler(func(string) error {
		return c.conn.SetReadDeadline(time.Now().Add(pongWait))
	})
	for {
		if _, _, err := c.conn.ReadMessage(); err != nil {
			return
		}
	}
}

// writeLoop is the only writer of data frames on c (gorilla allows one
// concurrent writer; control frames may come from elsewhere).
func (h *hub) writeLoop(c *client) {
	writeWait := h.timing.writeWait
	ping := time.NewTicker(h.timing.pingPeriod)
	defer ping.Stop()
	for {
		select {
		case msg := <-c.send:
			c.conn.SetWriteDeadline(time.Now().Add(writeWait))
			if err := c.conn.WriteMessage(websocket.TextMessage, msg); err != nil {
				h.drop(c, websocket.CloseGoingAway, "")
				return
			}
		case <-ping.C:
			if err := c.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeWait)); err != nil {
				h.drop(c, websocket.CloseGoingAway, "")
				return
			}
		case <-c.gone:
			return
		}
	}
}

// drop removes c and closes its connection, once, with a close frame
// saying why when there is a reason to give. It never waits on the
// network: the close frame may have to wait for the client's writer or
// for room in a full socket buffer (a slow client is exactly one whose
// buffer is full), so it goes out on its own goroutine, and drop is safe
// to call from the relay.
func (h *hub) drop(c *client, code int, reason string) {
	c.dropOnce.Do(func() {
		// The slot is free before the connection closes (and as soon as
		// the client is no longer counted): a client that saw its feed
		// end and reconnects finds it.
		h.mu.Lock()
		delete(h.clients, c)
		h.giveLocked(c.key)
		h.mu.Unlock()
		close(c.gone)
		if reason == "" {
			c.conn.Close()
			return
		}
		h.closers.Add(1)
		go func() {
			defer h.closers.Done()
			c.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(h.timing.closeWait))
			// Also ends a write the client's writeLoop may be stuck in.
			c.conn.Close()
		}()
	})
}

// broadcast queues msg for every client that wants it, without waiting:
// a client whose queue is full is dropped.
func (h *hub) broadcast(msg wsMessage, wants func(*client) bool) {
	b, err := json.Marshal(msg)
	if err != nil {
		h.s.log.Error("encode live feed message", "type", msg.Type, "err", err)
		return
	}
	var slow []*client
	h.mu.Lock()
	for c := range h.clients {
		if wants != nil && !wants(c) {
			continue
		}
		select {
		case c.send <- b:
		default:
			slow = append(slow, c)
		}
	}
	h.mu.Unlock()
	for _, c := range slow {
		h.s.metrics.wsDropped.Inc()
		h.s.log.Info("live feed client too slow, dropped", "remote", c.conn.RemoteAddr().String())
		h.drop(c, websocket.CloseTryAgainLater, "too slow")
	}
}

// run relays pool events to the clients and the metrics, and sends stats
// ticks, until ctx ends; then it closes every client.
func (h *hub) run(ctx context.Context, events <-chan pool.Event) {
	var wg sync.WaitGroup
	defer func() {
		wg.Wait()
		h.closeAll()
	}()
	// The stats tick reads the database; it has its own goroutine so a
	// slow query never holds up the events.
	wg.Go(func() {
		t := time.NewTicker(h.timing.statsEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				h.sendStats(ctx)
			}
		}
	})
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-events: // nil without an event source: never ready
			h.s.metrics.observe(ev)
			h.relay(ev)
		}
	}
}

func (h *hub) sendStats(ctx context.Context) {
	if h.count() == 0 {
		return
	}
	qctx, cancel := context.WithTimeout(ctx, 4*time.Second)
	defer cancel()
	ls, err := h.s.ledgerStats(qctx)
	if err != nil {
		if ctx.Err() == nil {
			h.s.metrics.dbErrors.Add(1)
			h.s.log.Warn("live feed stats: ledger read failed", "err", err)
		}
		return
	}
	h.broadcast(wsMessage{Type: "stats", Data: h.s.buildStats(ls)}, nil)
}

func (h *hub) relay(ev pool.Event) {
	switch ev.Kind {
	case pool.EventBlock:
		// The next /stats must show it as the last block at once.
		h.s.cache.invalidate()
		h.broadcast(wsMessage{Type: "block", Data: blockFromPool(*ev.Block)}, nil)
	case pool.EventJob:
		j := ev.Job
		h.broadcast(wsMessage{Type: "job", Data: jobJSON{ID: j.ID, Height: j.Height, Clean: j.Clean,
			NetworkDifficulty: finite(j.NetworkDifficulty), Transactions: j.Transactions, Sessions: j.Sessions,
			FanOutMillis: float64(j.FanOut) / float64(time.Millisecond), Time: ev.Time.UTC()}}, nil)
	case pool.EventWorkerUp, pool.EventWorkerDown:
		wk := ev.Worker
		name := "up"
		if ev.Kind == pool.EventWorkerDown {
			name = "down"
		}
		// The miner's IP address (Remote) stays in the pool's logs: the
		// feed is public.
		h.broadcast(wsMessage{Type: "worker", Data: workerEventJSON{Event: name, Address: wk.Address,
			Worker: wk.Worker, Time: ev.Time.UTC()}},
			func(c *client) bool { return c.allWorkers || c.address == wk.Address })
	}
}

// closeAll says goodbye to every client at shutdown and refuses new ones.
func (h *hub) closeAll() {
	h.mu.Lock()
	h.closed = true
	all := make([]*client, 0, len(h.clients))
	for c := range h.clients {
		all = append(all, c)
	}
	h.mu.Unlock()
	for _, c := range all {
		h.drop(c, websocket.CloseGoingAway, "server shutting down")
	}
	h.closers.Wait()
}
