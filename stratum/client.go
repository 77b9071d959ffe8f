package stratum

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrClientClosed is Client.Err after Close.
var ErrClientClosed = errors.New("stratum: client closed")

const (
	// clientMaxLine is larger than the server's limit: pools that pay
	// miners in the coinbase send long coinb2 strings, and a client talks
	// to one server it chose, not to the internet at large.
	clientMaxLine = 1 << 20

	// notificationBuffer decouples the reader from the consumer a little;
	// past it the reader blocks, keeping notifications in order.
	notificationBuffer = 64
)

// Client is a Stratum V1 client connection, used by the miner and by tests.
// Its methods are safe for concurrent use.
type Client struct {
	conn    net.Conn
	opts    ClientOptions
	writeMu sync.Mutex
	nextID  atomic.Uint64

	mu      sync.Mutex
	pending map[uint64]chan callResult

	notes     chan Notification
	done      chan struct{}
	closeOnce sync.Once
	err       error // set before done is closed
}

type callResult struct {
	result json.RawMessage
	err    error
}

// Dial connects to addr, "host:port" or "stratum+tcp://host:port". ctx
// bounds the dial only.
func Dial(ctx context.Context, addr string) (*Client, error) {
	hostport, err := stripScheme(addr)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", hostport)
	if err != nil {
		return nil, fmt.Errorf("stratum: dial %s: %w", hostport, err)
	}
	return NewClient(conn), nil
}

func stripScheme(addr string) (string, error) {
	scheme, rest, ok := strings.Cut(addr, "://")
	if !ok {
		return addr, nil
	}
	switch strings.ToLower(scheme) {
	case "stratum+tcp", "stratum", "tcp":
		return strings.TrimSuffix(rest, "/"), nil
	}
	return "", fmt.Errorf("stratum: dial %s: unsupported scheme %q", addr, scheme)
}

// ClientOptions change how a Client treats its server.
type ClientOptions struct {
	// OnProtocolError, when set, is told of each line from the server that
	// is not a Stratum message (not a JSON object, or a method that is not
	// a string), and the session goes on past it, as cgminer and cpuminer
	// do. Without it such a line ends the session with ErrProtocol: a
	// broken pool is failed over from loudly.
	OnProtocolError func(line []byte, err error)
}

// ErrProtocol marks a line from the server that is not a Stratum message.
var ErrProtocol = errors.New("stratum: protocol error")

// NewClient runs the client protocol over an established connection.
func NewClient(conn net.Conn) *Client { return NewClientOptions(conn, ClientOptions{}) }

// NewClientOptions is NewClient with options.
func NewClientOptions(conn net.Conn, opts ClientOptions) *Client {
	c := &Client{
		conn:    conn,
		opts:    opts,
		pending: make(map[uint64]chan callResult),
		notes:   make(chan Notification, notificationBuffer),
		done:    make(chan struct{}),
	}
	go c.readLoop()
	return c
}

// Call sends a request and waits for the reply with the same id. A Stratum
// error reply is returned as *Error. A result of false with a null error
// (how some pools reject shares) is returned as is.
func (c *Client) Call(ctx context.Context, method string, params any) (json.RawMessage, error) {
	id := c.nextID.Add(1)
	ch := make(chan callResult, 1)
	c.mu.Lock()
	if c.pending == nil {
		c.mu.Unlock()
		return nil, c.Err()
	}
	c.pending[id] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		if c.pending != nil {
			delete(c.pending, id)
		}
		c.mu.Unlock()
	}()

	line, err := appendMessage(make([]byte, 0, 128), json.RawMessage(strconv.FormatUint(id, 10)), method, params)
	if err != nil {
		return nil, err
	}
	if err := c.writeLine(ctx, append(line, '\n')); err != nil {
		return nil, fmt.Errorf("stratum: call %s: %w", method, err)
	}
	select {
	case r := <-ch:
		return r.result, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("stratum: call %s: %w", method, context.Cause(ctx))
	case <-c.done:
		// The read loop hands a reply over before it closes done, so a
		// reply and the end of the connection arriving together must
		// not lose the reply to select's choice.
		select {
		case r := <-ch:
			return r.result, r.err
		default:
		}
		return nil, fmt.Errorf("stratum: call %s: %w", method, c.Err())
	}
}

// Reply answers a server→client request (a Notification with an ID).
func (c *Client) Reply(ctx context.Context, id json.RawMessage, result any, rerr *Error) error {
	r := Response{ID: id, Result: result, Error: rerr}
	line, err := r.appendJSON(nil)
	if err != nil {
		return err
	}
	return c.writeLine(ctx, append(line, '\n'))
}

// SendRaw writes line as is, adding a newline if it lacks one.
func (c *Client) SendRaw(line []byte) error {
	if !bytes.HasSuffix(line, []byte{'\n'}) {
		line = append(line[:len(line):len(line)], '\n')
	}
	return c.writeLine(context.Background(), line)
}

// writeLine writes one whole line. A write cut short by ctx leaves half a
// message on the wire, so it ends the connection.
func (c *Client) writeLine(ctx context.Context, line []byte) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	select {
	case <-c.done:
		return c.Err()
	default:
	}
	deadline, _ := ctx.Deadline()
	_ = c.conn.SetWriteDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = c.conn.SetWriteDeadline(time.Now()) })
	n, err := c.conn.Write(line)
	stop()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil && n == 0 {
		// Nothing reached the wire, so the stream is intact.
		return fmt.Errorf("stratum: write: %w", context.Cause(ctx))
	}
	err = fmt.Errorf("stratum: write: %w", err)
	c.fail(err)
	return err
}

// Notifications delivers server→client messages in arrival order, with
// Params as json.RawMessage. Replies to Call are held up while this channel
// is full, so consume it. It is closed when the connection ends.
func (c *Client) Notifications() <-chan Notification { return c.notes }

// Done is closed when the connection has ended.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err is why the connection ended, nil while it is up.
func (c *Client) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// Close ends the connection.
func (c *Client) Close() error {
	c.fail(ErrClientClosed)
	return nil
}

func (c *Client) fail(err error) {
	c.closeOnce.Do(func() {
		c.err = err
		close(c.done)
		_ = c.conn.Close()
	})
}

func (c *Client) readLoop() {
	defer func() {
		c.mu.Lock()
		c.pending = nil // later Calls fail fast; waiting ones see done
		c.mu.Unlock()
		close(c.notes)
	}()
	lr := NewLineReader(c.conn, clientMaxLine)
	for {
		line, err := lr.ReadLine()
		if err != nil {
			c.fail(fmt.Errorf("stratum: read: %w", err))
			return
		}
		if err := c.dispatch(line); err != nil {
			if c.opts.OnProtocolError != nil && errors.Is(err, ErrProtocol) {
				c.opts.OnProtocolError(line, err)
				continue
			}
			c.fail(err)
			return
		}
	}
}

// dispatch routes one incoming line. A pool that sends something that is
// not a Stratum message is broken; failing loudly lets the miner reconnect
// or fail over instead of mining on a confused session.
func (c *Client) dispatch(line []byte) error {
	m, method, isNote, err := decodeServerLine(line)
	if err != nil {
		return err
	}
	if isNote {
		// Params must be a json.RawMessage holding JSON: a nil RawMessage
		// stored in the interface would not compare equal to nil.
		params := m.Params
		if len(params) == 0 {
			params = json.RawMessage("null")
		}
		n := Notification{Method: method, Params: params}
		if len(m.ID) > 0 && !isNull(m.ID) {
			n.ID = m.ID
		}
		select {
		case c.notes <- n:
			return nil
		case <-c.done:
			return c.err
		}
	}
	id, ok := parseCallID(m.ID)
	if !ok {
		return nil // a reply to nothing we sent; nothing waits for it
	}
	r := callResult{result: m.Result}
	if len(m.Error) > 0 && !isNull(m.Error) {
		var serr Error
		if err := serr.UnmarshalJSON(m.Error); err != nil {
			serr = Error{Code: CodeOther, Message: string(m.Error)}
		}
		r.err = &serr
	}
	c.mu.Lock()
	ch := c.pending[id]
	c.mu.Unlock()
	if ch != nil {
		select {
		case ch <- r:
		default: // a duplicate reply; the first one counts
		}
	}
	return nil
}

// decodeServerLine decodes one non-blank line from the server, as dispatch
// sees it. isNote tells a notification or server request (it has a method,
// possibly "") from a reply; errors wrap ErrProtocol.
func decodeServerLine(line []byte) (m wireMessage, method string, isNote bool, err error) {
	trimmed := bytes.TrimLeft(line, " \t\r")
	if len(trimmed) == 0 || trimmed[0] != '{' || json.Unmarshal(trimmed, &m) != nil {
		return m, "", false, fmt.Errorf("%w: server sent a line that is not a JSON object", ErrProtocol)
	}
	if len(m.Method) > 0 && !isNull(m.Method) {
		var ok bool
		if method, ok = rawString(m.Method); !ok {
			return m, "", false, fmt.Errorf("%w: method is not a string", ErrProtocol)
		}
		isNote = true
	}
	return m, method, isNote, nil
}

// parseCallID reads back our numeric ids; some servers echo them as strings.
func parseCallID(raw json.RawMessage) (uint64, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return 0, false
	}
	text := string(raw)
	if s, ok := rawString(raw); ok {
		text = s
	}
	id, err := strconv.ParseUint(text, 10, 64)
	return id, err == nil
}
