package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/cello-framework/cello/core/broker"
)

// component names the Python logger that records go to ("cello.rabbitmq").
const component = "rabbitmq"

// Reconnect backoff: the wait before attempt n is reconnectMinDelay * 2^(n-1),
// capped at reconnectMaxDelay, with ±20% jitter so that many clients of a
// restarted broker do not reconnect in step.
const (
	reconnectMinDelay = 250 * time.Millisecond
	reconnectMaxDelay = 5 * time.Second
)

// closeTimeout bounds the connection.close handshake when a client shuts a
// connection down; a dead peer fails it at once.
const closeTimeout = 2 * time.Second

// session is one AMQP connection and the channels that a producer or a
// consumer opened on it. A session is never reused once its connection or
// one of its channels closed: the link opens a new one.
type session struct {
	conn *amqp.Connection
	pub  *confirmChannel
	// sub and tags are set on consumer sessions only. tags maps each
	// consumed queue to its consumer tag; Consumer.subMu guards it.
	sub  *amqp.Channel
	tags map[string]string

	lost     chan struct{}
	lostOnce sync.Once
	lostErr  error // written before lost is closed

	// wg counts the goroutines that watch this session's connection and
	// channels and collect its returns. They all end when the connection
	// is closed.
	wg sync.WaitGroup
}

func newSession(conn *amqp.Connection) *session {
	return &session{conn: conn, tags: map[string]string{}, lost: make(chan struct{})}
}

// markLost records why the session ended; only the first reason is kept.
func (s *session) markLost(err error) {
	s.lostOnce.Do(func() {
		s.lostErr = err
		close(s.lost)
	})
}

func (s *session) isLost() bool {
	select {
	case <-s.lost:
		return true
	default:
		return false
	}
}

// watchClose ends the session when the connection or channel that owns
// notify closes, for whatever reason.
func (s *session) watchClose(notify chan *amqp.Error, source string) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err, ok := <-notify; ok && err != nil {
			s.markLost(fmt.Errorf("%s closed: %w", source, err))
			return
		}
		s.markLost(fmt.Errorf("%s closed", source))
	}()
}

// shutdown closes the connection, which closes its channels, and waits for
// the session's goroutines.
func (s *session) shutdown() {
	s.markLost(errors.New("connection closed by the client"))
	_ = s.conn.CloseDeadline(time.Now().Add(closeTimeout))
	s.wg.Wait()
}

// link keeps one producer's or consumer's connection open: it dials, runs
// the role's setup on each new connection, and reconnects in the background
// after the connection is lost.
type link struct {
	cfg  *Config
	log  broker.Logger
	role string // "producer" or "consumer", in log messages and the connection name
	// setup opens the role's channels on a new session. It runs before the
	// session becomes current, so no caller sees a half-built session.
	setup func(*session) error

	// ctx is cancelled by close; it ends the reconnect loop, its backoff
	// waits and any dial in progress.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	current *session      // nil while reconnecting
	next    chan struct{} // closed when the next session becomes current
	lastErr error         // the reason the latest session ended or the latest dial failed
	closed  bool
}

// newLink connects once within ctx, then keeps reconnecting in the
// background until close.
func newLink(ctx context.Context, cfg *Config, log broker.Logger, role string, setup func(*session) error) (*link, error) {
	l := &link{cfg: cfg, log: log, role: role, setup: setup, next: make(chan struct{})}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	s, err := l.connect(ctx)
	if err != nil {
		l.cancel()
		return nil, err
	}
	l.attach(s)
	l.wg.Add(1)
	go l.run(s)
	l.log.Log(broker.LevelInfo, component, fmt.Sprintf("%s connected to %s vhost %s", role, cfg.redactedURL(), cfg.Vhost),
		broker.F("broker", "rabbitmq"))
	return l, nil
}

// connect dials and runs setup on the new connection.
func (l *link) connect(ctx context.Context) (*session, error) {
	conn, err := dial(ctx, l.cfg, l.role)
	if err != nil {
		return nil, err
	}
	s := newSession(conn)
	s.watchClose(conn.NotifyClose(make(chan *amqp.Error, 1)), "connection")
	if err := l.setup(s); err != nil {
		s.shutdown()
		return nil, err
	}
	return s, nil
}

// attach makes s the current session, unless the link was closed; then the
// caller must shut s down.
func (l *link) attach(s *session) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.current = s
	close(l.next)
	l.next = make(chan struct{})
	return true
}

// detach clears the current session after s was lost. It returns false once
// the link is closed, because close then owns the session.
func (l *link) detach(s *session) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	if l.current == s {
		l.current = nil
	}
	l.lastErr = s.lostErr
	return true
}

// run waits for the current session to be lost and replaces it, until the
// link is closed.
func (l *link) run(s *session) {
	defer l.wg.Done()
	for {
		select {
		case <-s.lost:
		case <-l.ctx.Done():
			return
		}
		if !l.detach(s) {
			return
		}
		l.log.Log(broker.LevelWarning, component, fmt.Sprintf("%s lost its connection to %s, reconnecting", l.role, l.cfg.address()),
			broker.F("broker", "rabbitmq"), broker.F("err", errText(s.lostErr)))
		s.shutdown()
		if s = l.reconnect(); s == nil {
			return
		}
	}
}

// reconnect dials with exponential backoff until it succeeds or the link is
// closed, in which case it returns nil.
func (l *link) reconnect() *session {
	delay := backoff(1)
	for attempt := 1; ; attempt++ {
		timer := time.NewTimer(delay)
		select {
		case <-timer.C:
		case <-l.ctx.Done():
			timer.Stop()
			return nil
		}
		s, err := l.connect(l.ctx)
		if l.ctx.Err() != nil {
			if s != nil {
				s.shutdown()
			}
			return nil
		}
		if err != nil {
			l.mu.Lock()
			l.lastErr = err
			l.mu.Unlock()
			delay = backoff(attempt + 1)
			l.log.Log(broker.LevelWarning, component, fmt.Sprintf("%s reconnect attempt %d to %s failed, next attempt in %v",
				l.role, attempt, l.cfg.address(), delay.Round(10*time.Millisecond)),
				broker.F("broker", "rabbitmq"), broker.F("err", err.Error()))
			continue
		}
		if !l.attach(s) {
			s.shutdown()
			return nil
		}
		l.log.Log(broker.LevelInfo, component, fmt.Sprintf("%s reconnected to %s after %d attempts",
			l.role, l.cfg.address(), attempt), broker.F("broker", "rabbitmq"))
		return s
	}
}

// backoff returns the wait before reconnect attempt n, counting from 1.
func backoff(n int) time.Duration {
	d := reconnectMinDelay
	for i := 1; i < n && d < reconnectMaxDelay; i++ {
		d *= 2
	}
	d = min(d, reconnectMaxDelay)
	jitter := time.Duration(rand.Int64N(int64(d)/5*2+1)) - d/5
	return d + jitter
}

// session returns the current session, waiting while the link reconnects
// until deadline or until ctx ends.
func (l *link) session(ctx context.Context, deadline time.Time) (*session, error) {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return nil, fmt.Errorf("rabbitmq %s: %w", l.role, broker.ErrClosed)
		}
		s, next, lastErr := l.current, l.next, l.lastErr
		l.mu.Unlock()
		if s != nil && !s.isLost() {
			return s, nil
		}
		select {
		case <-next:
		case <-timer.C:
			return nil, fmt.Errorf("%w: no connection to rabbitmq at %s within the send timeout, still reconnecting in the background (last error: %v)",
				broker.ErrTimeout, l.cfg.address(), lastErr)
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: waiting for a connection to rabbitmq at %s: %v (last error: %v)",
				broker.ErrTimeout, l.cfg.address(), ctx.Err(), lastErr)
		case <-l.ctx.Done():
			return nil, fmt.Errorf("rabbitmq %s: %w", l.role, broker.ErrClosed)
		}
	}
}

// currentSession returns the current session, or nil while reconnecting.
func (l *link) currentSession() *session {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.current != nil && l.current.isLost() {
		return nil
	}
	return l.current
}

// close stops reconnecting, closes the connection and waits for every
// goroutine of the link.
func (l *link) close() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	s := l.current
	l.current = nil
	l.mu.Unlock()

	l.cancel()
	l.wg.Wait()
	if s != nil {
		s.shutdown()
	}
	l.log.Log(broker.LevelInfo, component, l.role+" closed its connection to "+l.cfg.address(), broker.F("broker", "rabbitmq"))
}

// dial opens an AMQP connection within ctx and the connection timeout. The
// TCP connect, the TLS handshake and the AMQP handshake all share that
// deadline, and cancelling ctx closes the socket at once.
func dial(ctx context.Context, cfg *Config, role string) (*amqp.Connection, error) {
	timeout := cfg.ConnectionTimeout
	if d, ok := ctx.Deadline(); ok && time.Until(d) < timeout {
		timeout = time.Until(d)
	}
	if timeout <= 0 {
		return nil, fmt.Errorf("%w: no time left to connect to rabbitmq at %s", broker.ErrTimeout, cfg.address())
	}
	deadline := time.Now().Add(timeout)
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName("cello " + role)

	var stopWatch func() bool
	ac := amqp.Config{
		// A new PlainAuth per dial, because amqp091-go clears the password
		// of the one it used once the handshake is done.
		SASL:       []amqp.Authentication{&amqp.PlainAuth{Username: cfg.Username, Password: cfg.password}},
		Vhost:      cfg.Vhost,
		Heartbeat:  cfg.Heartbeat,
		Properties: props,
		Locale:     "en_US",
		Dial: func(network, addr string) (net.Conn, error) {
			d := net.Dialer{Deadline: deadline}
			conn, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			// amqp091-go clears this deadline after the AMQP handshake.
			if err := conn.SetDeadline(deadline); err != nil {
				conn.Close()
				return nil, err
			}
			stopWatch = context.AfterFunc(ctx, func() { conn.Close() })
			return conn, nil
		},
	}
	if cfg.tlsConfig != nil {
		// NOTE: no test dials a TLS broker; the tests stop at building
		// this configuration from the tls_* fields.
		ac.TLSClientConfig = cfg.tlsConfig.Clone()
	}
	conn, err := amqp.DialConfig(cfg.dialURL(), ac)
	if stopWatch != nil && !stopWatch() && err == nil {
		// ctx ended just as the handshake finished and closed the socket.
		conn.Close()
		err = ctx.Err()
	}
	if err != nil {
		return nil, dialError(ctx, cfg, timeout, err)
	}
	return conn, nil
}

// dialURL returns the URL passed to amqp091-go: scheme, host and port only,
// because the credentials, vhost and TLS settings go in amqp.Config.
func (c *Config) dialURL() string {
	u := c.Scheme + "://" + c.address() + "/"
	if c.Heartbeat == 0 {
		// amqp091-go replaces a zero Config.Heartbeat with 10 s; only this
		// URL parameter makes it propose 0, which takes the broker's value.
		u += "?heartbeat=0"
	}
	return u
}

// dialError wraps a failed dial with the sentinel that fits it.
func dialError(ctx context.Context, cfg *Config, timeout time.Duration, err error) error {
	var amqpErr *amqp.Error
	var netErr net.Error
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("%w: connecting to rabbitmq at %s: %v", broker.ErrTimeout, cfg.address(), ctx.Err())
	case errors.Is(err, amqp.ErrCredentials) || (errors.As(err, &amqpErr) && amqpErr.Code == amqp.AccessRefused):
		return fmt.Errorf("%w: rabbitmq at %s rejected the login of user %q; check the user name and password in the url: %v",
			broker.ErrConnection, cfg.address(), cfg.Username, err)
	case errors.Is(err, amqp.ErrVhost) || (errors.As(err, &amqpErr) && amqpErr.Code == amqp.NotAllowed):
		return fmt.Errorf("%w: rabbitmq at %s denied user %q access to vhost %q: %v",
			broker.ErrConnection, cfg.address(), cfg.Username, cfg.Vhost, err)
	case errors.As(err, &netErr) && netErr.Timeout():
		return fmt.Errorf("%w: connecting to rabbitmq at %s took longer than %v: %v",
			broker.ErrTimeout, cfg.address(), timeout.Round(time.Millisecond), err)
	}
	return fmt.Errorf("%w: cannot connect to rabbitmq at %s: %v", broker.ErrConnection, cfg.address(), err)
}

// errText returns err's message, or "" for nil, for the err log field.
func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
