package rabbitmq

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/cello-framework/cello/core/broker"
)

// Producer publishes to the config's exchange with publisher confirms.
type Producer struct {
	cfg  *Config
	log  broker.Logger
	link *link

	// mu guards closed; sends counts the Send calls in progress, which Close
	// waits for.
	mu     sync.Mutex
	closed bool
	sends  sync.WaitGroup
}

// NewProducer connects within ctx and the connection timeout.
func NewProducer(ctx context.Context, cfg *Config, log broker.Logger) (broker.Producer, error) {
	if log == nil {
		log = broker.NopLogger{}
	}
	l, err := newLink(ctx, cfg, log, "producer", func(s *session) (err error) {
		s.pub, err = openConfirmChannel(s)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &Producer{cfg: cfg, log: log, link: l}, nil
}

// Send publishes msgs with routing key Destination and returns once each
// was confirmed, returned as unroutable (ErrNotFound) or rejected
// (ErrDelivery), or the send timeout passed (ErrTimeout). Messages whose
// connection drops before their confirm are published again on the next
// connection while time is left. A batch with an invalid or oversized
// message sends nothing.
func (p *Producer) Send(ctx context.Context, msgs []broker.OutMessage) ([]broker.SendResult, error) {
	if err := p.begin(); err != nil {
		return nil, err
	}
	defer p.sends.Done()
	for i := range msgs {
		if err := checkOutMessage(i, &msgs[i], p.cfg.Exchange, p.cfg.MaxMessageBytes); err != nil {
			return nil, err
		}
	}
	if len(msgs) == 0 {
		return nil, nil
	}
	now := time.Now()
	items := make([]outgoing, len(msgs))
	for i := range msgs {
		items[i] = newOutgoing(p.cfg.Exchange, &msgs[i], now)
	}
	errs := p.link.publish(ctx, now.Add(p.cfg.SendTimeout), items)
	results := make([]broker.SendResult, len(msgs))
	for i := range results {
		results[i] = broker.SendResult{ID: items[i].msg.MessageId, Err: errs[i]}
	}
	return results, nil
}

// begin registers a Send, unless the producer is closed.
func (p *Producer) begin() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return fmt.Errorf("rabbitmq producer: %w", broker.ErrClosed)
	}
	p.sends.Add(1)
	return nil
}

// publish publishes items and waits for their confirms until deadline,
// waiting for a new connection when the current one is lost. The result
// has one error (or nil) per item.
func (l *link) publish(ctx context.Context, deadline time.Time, items []outgoing) []error {
	results := make([]error, len(items))
	pending := make([]int, len(items))
	for i := range pending {
		pending[i] = i
	}
	for len(pending) > 0 {
		s, err := l.session(ctx, deadline)
		if err != nil {
			for _, i := range pending {
				results[i] = err
			}
			break
		}
		pending = s.pub.publish(ctx, deadline, items, pending, results)
		if len(pending) == 0 {
			break
		}
		// The channel closed; wait until the session is marked lost so the
		// next round waits for a new one instead of spinning.
		waitLost(ctx, deadline, s)
		if ctx.Err() != nil || !time.Now().Before(deadline) {
			for _, i := range pending {
				results[i] = fmt.Errorf("%w: the connection to rabbitmq was lost before the broker confirmed the message for routing key %q",
					broker.ErrTimeout, items[i].routingKey)
			}
			break
		}
	}
	return results
}

func waitLost(ctx context.Context, deadline time.Time, s *session) {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case <-s.lost:
	case <-timer.C:
	case <-ctx.Done():
	}
}

// Close waits until ctx ends for Send calls in progress, then closes the
// connection. Send calls still waiting then fail with ErrClosed.
func (p *Producer) Close(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()

	done := make(chan struct{})
	go func() {
		p.sends.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("%w: closing the rabbitmq producer before Send calls in progress finished: %v", broker.ErrTimeout, ctx.Err())
	}
	p.link.close()
	<-done
	return err
}

var _ broker.Producer = (*Producer)(nil)
