package libvirt

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket"
	"github.com/digitalocean/go-libvirt/socket/dialers"
	"github.com/sirupsen/logrus"
)

// conn is the adapter's connection to libvirtd: one session at a time,
// made on first use and made again after the previous one was lost or
// dropped.
type conn struct {
	uri     golibvirt.ConnectURI
	dialer  socket.Dialer
	timeout time.Duration
	log     logrus.FieldLogger
	// subscribe starts the session's event subscriptions.
	subscribe func(ctx context.Context, s *session) error

	mu      sync.Mutex
	cur     *session
	dialing chan struct{} // closed when the dial under way ends
	closed  bool
}

// session is one connection to libvirtd.
type session struct {
	lv      *golibvirt.Libvirt
	nc      *trackingDialer
	stop    context.CancelFunc // ends the event subscriptions
	once    sync.Once
	closing atomic.Bool // the adapter ended the session itself
}

// alive reports whether the session's socket is still open.
func (s *session) alive() bool { return s.lv.IsConnected() }

// close ends the session without a goodbye RPC: closing the socket makes
// every call still waiting on it return ErrInterrupted.
func (s *session) close() {
	s.closing.Store(true)
	s.once.Do(func() {
		if s.stop != nil {
			s.stop()
		}
		s.nc.close()
	})
}

// trackingDialer keeps the socket it dialed so the adapter can close it
// itself: go-libvirt's own Disconnect makes an RPC first, which would hang
// on a libvirtd that does not answer.
type trackingDialer struct {
	inner socket.Dialer
	mu    sync.Mutex
	conn  net.Conn
	shut  bool
}

// Dial dials with the inner dialer and keeps the socket.
func (d *trackingDialer) Dial() (net.Conn, error) {
	c, err := d.inner.Dial()
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.shut {
		c.Close()
		return nil, net.ErrClosed
	}
	d.conn = c
	return c, nil
}

func (d *trackingDialer) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.shut = true
	if d.conn != nil {
		d.conn.Close()
	}
}

// dialerFor returns the dialer for a local URI: libvirtd's unix socket,
// named by the URI's socket parameter or the default path.
func dialerFor(rawURI string, timeout time.Duration) (socket.Dialer, golibvirt.ConnectURI, error) {
	u, err := url.Parse(rawURI)
	if err != nil {
		return nil, "", fmt.Errorf("%w: URI %q: %v", ErrInvalidConfig, rawURI, err)
	}
	remote := golibvirt.RemoteURI(u)
	transport := "unix"
	if parts := strings.SplitN(u.Scheme, "+", 2); len(parts) == 2 {
		transport = parts[1]
	} else if u.Host != "" {
		transport = "tls"
	}
	if transport != "unix" {
		return nil, remote, nil
	}
	opts := []dialers.LocalOption{dialers.WithLocalTimeout(timeout)}
	if s := u.Query().Get("socket"); s != "" {
		opts = append(opts, dialers.WithSocket(s))
	}
	return dialers.NewLocal(opts...), remote, nil
}

// session returns the live session, connecting when there is none. Only
// one caller dials at a time; the others wait for it (or for their ctx).
func (c *conn) session(ctx context.Context) (*session, error) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, ErrClosed
		}
		s := c.cur
		if s != nil && !s.alive() {
			c.cur = nil
			c.mu.Unlock()
			s.close()
			continue
		}
		if s != nil {
			c.mu.Unlock()
			return s, nil
		}
		if wait := c.dialing; wait != nil {
			c.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		done := make(chan struct{})
		c.dialing = done
		c.mu.Unlock()

		s, err := c.dial(ctx)

		c.mu.Lock()
		c.dialing = nil
		if err == nil && c.closed {
			err = ErrClosed
		}
		if err == nil {
			c.cur = s
		}
		c.mu.Unlock()
		close(done)
		if err != nil {
			if s != nil {
				s.close()
			}
			return nil, err
		}
		return s, nil
	}
}

// dial opens a session: socket, authentication, connect-open and the event
// subscriptions, all within one call timeout.
func (c *conn) dial(ctx context.Context) (*session, error) {
	s := &session{nc: &trackingDialer{inner: c.dialer}}
	s.lv = golibvirt.NewWithDialer(s.nc)
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	connected := make(chan error, 1)
	go func() { connected <- s.lv.ConnectToURI(c.uri) }()
	select {
	case err := <-connected:
		if err != nil {
			s.close()
			return nil, fmt.Errorf("libvirt: connect to %s: %w", c.uri, err)
		}
	case <-ctx.Done():
		s.close()
		return nil, fmt.Errorf("libvirt: connect to %s: %w", c.uri, c.ended(parent))
	}
	evCtx, stop := context.WithCancel(context.Background())
	s.stop = stop
	if c.subscribe != nil {
		subscribed := make(chan error, 1)
		go func() { subscribed <- c.subscribe(evCtx, s) }()
		select {
		case err := <-subscribed:
			if err != nil {
				s.close()
				return nil, fmt.Errorf("libvirt: subscribe to events: %w", err)
			}
		case <-ctx.Done():
			s.close()
			return nil, fmt.Errorf("libvirt: subscribe to events: %w", c.ended(parent))
		}
	}
	go c.watch(s)
	c.log.WithField("uri", string(c.uri)).Debug("libvirt: connected")
	return s, nil
}

// watch waits on go-libvirt's Disconnected channel and forgets s as soon as
// libvirtd goes away, so the next call reconnects (and an operator sees
// when it happened).
func (c *conn) watch(s *session) {
	<-s.lv.Disconnected()
	if s.closing.Load() {
		return
	}
	c.mu.Lock()
	if c.cur == s {
		c.cur = nil
	}
	c.mu.Unlock()
	s.close()
	c.log.WithField("uri", string(c.uri)).Warn("libvirt: connection to libvirtd lost; the next call reconnects")
}

// ended names why a bounded wait ended: the caller's own context, or else
// the call timeout.
func (c *conn) ended(parent context.Context) error {
	if err := parent.Err(); err != nil {
		return err
	}
	return fmt.Errorf("%w after %v", ErrCallTimeout, c.timeout)
}

// drop ends s and forgets it, so the next call reconnects.
func (c *conn) drop(s *session, why string) {
	c.mu.Lock()
	if c.cur == s {
		c.cur = nil
	}
	c.mu.Unlock()
	s.close()
	c.log.WithField("reason", why).Warn("libvirt: connection dropped")
}

// close ends the connection for good: a polite connect-close within the
// call timeout, then the socket.
func (c *conn) close() {
	c.mu.Lock()
	c.closed = true
	s := c.cur
	c.cur = nil
	c.mu.Unlock()
	if s == nil {
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if s.stop != nil {
			s.stop()
		}
		_ = s.lv.Disconnect()
	}()
	select {
	case <-done:
	case <-time.After(c.timeout):
	}
	s.close()
}

// callResult is what a go-libvirt call returned, and whether the call
// timeout fired before it did.
type callResult[T any] struct {
	v     T
	err   error
	fired bool
}

// call runs one go-libvirt call on the live session, bounded by ctx and the
// call timeout. When the timeout fires the session is dropped: its socket
// is closed, so the abandoned call returns and a late answer can never reach
// a later call. When ctx ends first the call returns ctx's error at once;
// the timeout still bounds the abandoned call. A call that fails because
// the session died is retried once on a new session when that is safe:
// always if it is idempotent, otherwise only if the request never left (a
// send error rather than an interrupted wait).
func call[T any](ctx context.Context, c *conn, op string, idempotent bool, fn func(*golibvirt.Libvirt) (T, error)) (T, error) {
	var zero T
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return zero, fmt.Errorf("libvirt %s: %w", op, err)
		}
		s, err := c.session(ctx)
		if err != nil {
			return zero, fmt.Errorf("libvirt %s: %w", op, err)
		}
		done := make(chan callResult[T], 1)
		timer := time.AfterFunc(c.timeout, func() { c.drop(s, op+": call timed out") })
		go func() {
			v, err := fn(s.lv)
			fired := !timer.Stop()
			done <- callResult[T]{v: v, err: err, fired: fired}
		}()
		var r callResult[T]
		select {
		case r = <-done:
		case <-ctx.Done():
			return zero, fmt.Errorf("libvirt %s: %w", op, ctx.Err())
		}
		if r.err == nil {
			return r.v, nil
		}
		if r.fired {
			return zero, fmt.Errorf("libvirt %s: %w after %v (connection dropped)", op, ErrCallTimeout, c.timeout)
		}
		var lvErr golibvirt.Error
		if errors.As(r.err, &lvErr) {
			return zero, fmt.Errorf("libvirt %s: %w", op, r.err)
		}
		interrupted := errors.Is(r.err, golibvirt.ErrInterrupted)
		unsent := sendFailed(r.err)
		if !interrupted && !unsent && s.alive() {
			// An error about this call only.
			return zero, fmt.Errorf("libvirt %s: %w", op, r.err)
		}
		// The session died under the call.
		c.drop(s, op+": "+r.err.Error())
		if attempt == 0 && (idempotent || unsent) {
			c.log.WithField("op", op).Info("libvirt: retrying on a new connection")
			continue
		}
		return zero, fmt.Errorf("libvirt %s: %w: %w", op, ErrConnectionLost, r.err)
	}
}

// sendFailed reports whether err is the socket refusing the request: it
// never reached libvirtd whole, so libvirtd did not act on it.
func sendFailed(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) || errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF)
}

// do is call for go-libvirt calls that return only an error.
func do(ctx context.Context, c *conn, op string, idempotent bool, fn func(*golibvirt.Libvirt) error) error {
	_, err := call(ctx, c, op, idempotent, func(l *golibvirt.Libvirt) (struct{}, error) {
		return struct{}{}, fn(l)
	})
	return err
}
