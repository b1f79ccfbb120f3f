package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	ck "github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/cello-framework/cello/core/broker"
)

// Consumer reads a consumer group's records and applies the application's
// results: offsets are stored only for records whose handler finished, a
// failed record is retried in place while its partition waits, and records
// that exhaust their retries go to <topic>.dlq.
type Consumer struct {
	c          *ck.Consumer
	cfg        *Config
	opts       broker.ConsumerOptions
	log        broker.Logger
	group      string
	autoCommit bool
	brokers    string

	// pollMu serializes Poll and Close, because librdkafka's consumer
	// queue must not be polled after it is closed. lifeMu is held shared by
	// Settle and Commit and exclusively by Close, for the same reason.
	pollMu sync.Mutex
	lifeMu sync.RWMutex

	// mu guards everything below. It is never held across a call that
	// waits on the broker, except StoreOffsets and Pause, which are local.
	mu        sync.Mutex
	closed    bool
	nextToken uint64
	nextLane  uint32
	inflight  map[uint64]*record
	parts     map[topicPartition]*partition
	throttle  *broker.Throttle
	// unstored lists the partitions whose commit offset advanced since the
	// last StoreOffsets call, so a settled batch stores each partition once.
	unstored []*partition

	dlqMu sync.Mutex
	dlq   *Producer
}

type topicPartition struct {
	topic     string
	partition int32
}

// record is one fetched Kafka record, from its first delivery until its
// offset is stored or its partition is revoked.
type record struct {
	token   uint64
	msg     *ck.Message
	attempt uint32
	part    *partition
	settled bool
	// retries counts Nack and Requeue results only; Skipped does not count.
	retries int
}

// partition tracks the records of one assigned partition. window lists
// unsettled and settled records in offset order; the offset to commit is
// that of the first unsettled one. held lists, in offset order, records to
// deliver again once waitUntil passes. While held is not empty the
// partition is paused and newly fetched records queue behind it, so a
// retried record is handled before the records that follow it.
type partition struct {
	tp        topicPartition
	lane      uint32
	window    []*record
	stored    int64
	held      []*record
	waitUntil time.Time
	paused    bool
	unstored  bool
}

// NewConsumer creates a consumer in the options' group (or the config's)
// and checks that a broker responds within the connect timeout.
func NewConsumer(ctx context.Context, cfg *Config, opts broker.ConsumerOptions, log broker.Logger) (*Consumer, error) {
	group := cfg.GroupID
	if opts.Group != "" {
		group = opts.Group
	}
	autoCommit := cfg.AutoCommit
	if opts.AutoCommit != nil {
		autoCommit = *opts.AutoCommit
	}
	m := cfg.consumerMap(group, autoCommit)
	c, err := ck.NewConsumer(&m)
	if err != nil {
		return nil, fmt.Errorf("%w: kafka consumer: %v", broker.ErrConfig, err)
	}
	if err := checkReachable(ctx, c, cfg); err != nil {
		c.Close()
		return nil, err
	}
	go forwardLogs(c.Logs(), log, joinBrokers(cfg))
	co := &Consumer{
		c: c, cfg: cfg, opts: opts, log: log, group: group, autoCommit: autoCommit,
		brokers:  joinBrokers(cfg),
		inflight: map[uint64]*record{},
		parts:    map[topicPartition]*partition{},
		throttle: broker.NewThrottle(time.Minute),
	}
	log.Log(broker.LevelInfo, "kafka", "consumer connected to group "+group, broker.F("broker", co.brokers))
	return co, nil
}

// Subscribe replaces the subscription.
func (co *Consumer) Subscribe(ctx context.Context, topics []string) error {
	if len(topics) == 0 {
		return fmt.Errorf("%w: subscribe needs at least one topic", broker.ErrInvalidArgument)
	}
	for _, t := range topics {
		if err := checkTopic(t); err != nil {
			return err
		}
	}
	co.pollMu.Lock()
	defer co.pollMu.Unlock()
	if co.isClosed() {
		return fmt.Errorf("kafka consumer: %w", broker.ErrClosed)
	}
	if err := co.c.SubscribeTopics(topics, co.rebalance); err != nil {
		return fmt.Errorf("%w: subscribe to %v: %v", broker.ErrConnection, topics, err)
	}
	for _, t := range topics {
		co.log.Log(broker.LevelInfo, "kafka", "subscribed to "+t+" in group "+co.group,
			broker.F("broker", co.brokers), broker.F("topic", t))
	}
	return nil
}

func (co *Consumer) isClosed() bool {
	co.mu.Lock()
	defer co.mu.Unlock()
	return co.closed
}

// rebalance runs inside Poll. On revocation it commits what was handled and
// drops the partitions' records, because their next owner fetches them
// again from the committed offset. A settlement that arrives later is
// ignored.
func (co *Consumer) rebalance(c *ck.Consumer, ev ck.Event) error {
	switch e := ev.(type) {
	case ck.AssignedPartitions:
		co.log.Log(broker.LevelInfo, "kafka", fmt.Sprintf("assigned %s", describePartitions(e.Partitions)),
			broker.F("broker", co.brokers))
	case ck.RevokedPartitions:
		co.log.Log(broker.LevelInfo, "kafka", fmt.Sprintf("revoked %s", describePartitions(e.Partitions)),
			broker.F("broker", co.brokers))
		if !c.AssignmentLost() {
			co.mu.Lock()
			co.storeOffsets()
			co.mu.Unlock()
			co.commitStored()
		}
		co.mu.Lock()
		for _, tp := range e.Partitions {
			key := topicPartition{*tp.Topic, tp.Partition}
			if p, ok := co.parts[key]; ok {
				for _, r := range p.window {
					delete(co.inflight, r.token)
				}
				delete(co.parts, key)
			}
		}
		co.mu.Unlock()
	}
	return nil
}

func describePartitions(tps []ck.TopicPartition) string {
	s := ""
	for i, tp := range tps {
		if i > 0 {
			s += ", "
		}
		s += *tp.Topic + "[" + strconv.Itoa(int(tp.Partition)) + "]"
	}
	if s == "" {
		return "no partitions"
	}
	return "partitions " + s
}

// Poll returns redeliveries that are due first, then fetched records, at
// most max in all. It waits at most timeout for the first one.
func (co *Consumer) Poll(ctx context.Context, timeout time.Duration, max int) ([]broker.Delivery, error) {
	if max <= 0 || max > co.cfg.MaxPollRecords {
		max = co.cfg.MaxPollRecords
	}
	co.pollMu.Lock()
	defer co.pollMu.Unlock()
	if co.isClosed() {
		return nil, fmt.Errorf("kafka consumer: %w", broker.ErrClosed)
	}
	deadline := time.Now().Add(timeout)
	var out []broker.Delivery
	for {
		out = co.takeDue(out, max)
		if len(out) >= max {
			return out, nil
		}
		wait := co.nextWait(deadline, len(out) > 0)
		ev := co.c.Poll(int(wait.Milliseconds()))
		if ev == nil {
			if len(out) > 0 || !time.Now().Before(deadline) {
				return out, nil
			}
			if ctx.Err() != nil {
				return out, nil
			}
			continue
		}
		var err error
		if out, err = co.handleEvent(ev, out); err != nil {
			return out, err
		}
	}
}

// nextWait returns how long the next librdkafka poll may block: not past
// the deadline, not past the next due retry, and not at all once some
// deliveries are ready. Waits are cut to 200 ms so Close is not held long.
func (co *Consumer) nextWait(deadline time.Time, haveSome bool) time.Duration {
	if haveSome {
		return 0
	}
	wait := time.Until(deadline)
	co.mu.Lock()
	for _, p := range co.parts {
		if len(p.held) > 0 {
			if d := time.Until(p.waitUntil); d < wait {
				wait = d
			}
		}
	}
	co.mu.Unlock()
	if wait > 200*time.Millisecond {
		wait = 200 * time.Millisecond
	}
	if wait < 0 {
		wait = 0
	}
	return wait
}

func (co *Consumer) handleEvent(ev ck.Event, out []broker.Delivery) ([]broker.Delivery, error) {
	switch e := ev.(type) {
	case *ck.Message:
		if e.TopicPartition.Error != nil {
			return out, co.fetchError(e.TopicPartition.Error, *e.TopicPartition.Topic)
		}
		co.mu.Lock()
		defer co.mu.Unlock()
		r := co.track(e)
		if len(r.part.held) > 0 {
			// A retry holds this partition: records behind it wait in order.
			r.part.held = append(r.part.held, r)
			return out, nil
		}
		return append(out, co.delivery(r)), nil
	case ck.Error:
		return out, co.fetchError(e, "")
	}
	return out, nil
}

// fetchError turns a consumer error into a returned error when the
// application must act, and logs transient ones that librdkafka retries.
func (co *Consumer) fetchError(err error, topic string) error {
	var kerr ck.Error
	if !errors.As(err, &kerr) {
		return fmt.Errorf("%w: kafka consumer: %v", broker.ErrConnection, err)
	}
	switch {
	case kerr.IsFatal():
		return fmt.Errorf("%w: kafka consumer fatal error: %v", broker.ErrConnection, err)
	case kerr.Code() == ck.ErrUnknownTopicOrPart || kerr.Code() == ck.ErrUnknownTopic:
		// The topic may be created later, by a producer or an admin, and the
		// subscription picks it up then, so log a warning rather than fail.
		co.warnOnce("unknown:"+topic, "topic does not exist yet, waiting for it: "+err.Error(), topic)
		return nil
	}
	co.warnOnce(kerr.Code().String(), "consumer error, librdkafka retries: "+err.Error(), topic)
	return nil
}

// warnOnce logs a transient consumer error at most once a minute per kind,
// because librdkafka repeats them for as long as the condition lasts.
func (co *Consumer) warnOnce(kind, message, topic string) {
	ok, dropped := co.throttle.Allow(kind)
	if !ok {
		return
	}
	if dropped > 0 {
		message += fmt.Sprintf(" (%d similar errors not logged)", dropped)
	}
	fields := []broker.Field{broker.F("broker", co.brokers)}
	if topic != "" {
		fields = append(fields, broker.F("topic", topic))
	}
	co.log.Log(broker.LevelWarning, "kafka", message, fields...)
}

// track registers a fetched record. Callers hold mu.
func (co *Consumer) track(m *ck.Message) *record {
	key := topicPartition{*m.TopicPartition.Topic, m.TopicPartition.Partition}
	p, ok := co.parts[key]
	if !ok {
		co.nextLane++
		p = &partition{tp: key, lane: co.nextLane, stored: -1}
		co.parts[key] = p
	}
	co.nextToken++
	r := &record{token: co.nextToken, msg: m, attempt: 1, part: p}
	co.inflight[r.token] = r
	p.window = append(p.window, r)
	return r
}

func (co *Consumer) delivery(r *record) broker.Delivery {
	m := r.msg
	d := broker.Delivery{
		Token:     r.token,
		Lane:      r.part.lane,
		Attempt:   r.attempt,
		Topic:     r.part.tp.topic,
		Key:       m.Key,
		Value:     m.Value,
		Partition: r.part.tp.partition,
		Offset:    int64(m.TopicPartition.Offset),
		Timestamp: m.Timestamp,
	}
	if m.Value == nil {
		d.Value = []byte{}
	}
	if len(m.Headers) > 0 {
		d.Headers = make([]broker.Header, len(m.Headers))
		for i, h := range m.Headers {
			d.Headers[i] = broker.Header{Key: h.Key, Value: h.Value}
		}
	}
	d.ID = RecordID(d.Topic, d.Partition, d.Offset)
	return d
}

// takeDue appends the held records of partitions whose backoff ended, in
// offset order, and resumes the partitions it emptied.
func (co *Consumer) takeDue(out []broker.Delivery, max int) []broker.Delivery {
	co.mu.Lock()
	defer co.mu.Unlock()
	now := time.Now()
	var resume []ck.TopicPartition
	for _, p := range co.parts {
		if len(p.held) == 0 || p.waitUntil.After(now) {
			continue
		}
		for len(p.held) > 0 && len(out) < max {
			out = append(out, co.delivery(p.held[0]))
			p.held[0] = nil
			p.held = p.held[1:]
		}
		if len(p.held) == 0 && p.paused {
			p.paused = false
			topic := p.tp.topic
			resume = append(resume, ck.TopicPartition{Topic: &topic, Partition: p.tp.partition})
		}
	}
	if len(resume) > 0 {
		if err := co.c.Resume(resume); err != nil {
			co.log.Log(broker.LevelWarning, "kafka", "resume failed: "+err.Error(), broker.F("broker", co.brokers))
		}
	}
	return out
}

// Settle applies each result. With auto_commit off it then commits the
// stored offsets synchronously.
func (co *Consumer) Settle(ctx context.Context, results []broker.Settlement) error {
	co.lifeMu.RLock()
	defer co.lifeMu.RUnlock()
	if co.isClosed() {
		return fmt.Errorf("kafka consumer: %w", broker.ErrClosed)
	}
	var firstErr error
	for _, s := range results {
		if err := co.settle(ctx, s); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	co.mu.Lock()
	co.storeOffsets()
	co.mu.Unlock()
	if !co.autoCommit {
		co.commitStored()
	}
	return firstErr
}

func (co *Consumer) settle(ctx context.Context, s broker.Settlement) error {
	co.mu.Lock()
	r, ok := co.inflight[s.Token]
	if !ok {
		issued := s.Token != 0 && s.Token <= co.nextToken
		co.mu.Unlock()
		if issued {
			// Settled before, or its partition was revoked and the group
			// will deliver the record again: nothing to do.
			co.log.Log(broker.LevelDebug, "kafka", fmt.Sprintf("delivery token %d is no longer tracked; ignoring its result", s.Token),
				broker.F("broker", co.brokers))
			return nil
		}
		return fmt.Errorf("%w: delivery token %d was never issued by this consumer", broker.ErrNotFound, s.Token)
	}
	if r.settled {
		co.mu.Unlock()
		return nil
	}
	result := s.Result
	if (result == broker.Nack || result == broker.Requeue) && r.retries >= co.opts.Retry.MaxRetries {
		co.log.Log(broker.LevelWarning, "kafka",
			fmt.Sprintf("record %s[%d]@%d failed %d times, dead-lettering it", r.part.tp.topic, r.part.tp.partition, r.msg.TopicPartition.Offset, r.retries+1),
			broker.F("broker", co.brokers), broker.F("topic", r.part.tp.topic))
		result = broker.DeadLetter
		if s.Reason == "" {
			s.Reason = "max retries exceeded"
		}
	}
	switch result {
	case broker.Ack:
		co.finish(r)
	case broker.Reject:
		co.log.Log(broker.LevelWarning, "kafka",
			fmt.Sprintf("record %s[%d]@%d rejected: %s", r.part.tp.topic, r.part.tp.partition, r.msg.TopicPartition.Offset, s.Reason),
			broker.F("broker", co.brokers), broker.F("topic", r.part.tp.topic))
		co.finish(r)
	case broker.Nack, broker.Requeue:
		r.retries++
		r.attempt++
		delay := time.Duration(0)
		if result == broker.Nack {
			delay = co.opts.Retry.Delay(r.retries)
		}
		co.hold(r, delay)
	case broker.Skipped:
		co.hold(r, 0)
	case broker.DeadLetter:
		co.mu.Unlock()
		if err := co.deadLetter(ctx, r, s.Reason); err != nil {
			// Not stored: the record stays unsettled and is fetched again
			// after a restart, so the failure loses nothing.
			return err
		}
		co.mu.Lock()
		if co.inflight[r.token] == r {
			co.finish(r)
		}
	}
	co.mu.Unlock()
	return nil
}

// finish marks r settled and stores the partition's new commit offset if
// it advanced. Callers hold mu.
func (co *Consumer) finish(r *record) {
	r.settled = true
	delete(co.inflight, r.token)
	p := r.part
	advanced := false
	next := p.stored
	for len(p.window) > 0 && p.window[0].settled {
		next = int64(p.window[0].msg.TopicPartition.Offset) + 1
		p.window[0] = nil
		p.window = p.window[1:]
		advanced = true
	}
	if !advanced || next <= p.stored {
		return
	}
	p.stored = next
	if !p.unstored {
		p.unstored = true
		co.unstored = append(co.unstored, p)
	}
}

// storeOffsets hands the advanced commit offsets to librdkafka in one call.
// Partitions revoked since they advanced are left out. Callers hold mu.
func (co *Consumer) storeOffsets() {
	if len(co.unstored) == 0 {
		return
	}
	tps := make([]ck.TopicPartition, 0, len(co.unstored))
	for _, p := range co.unstored {
		p.unstored = false
		if co.parts[p.tp] != p {
			continue
		}
		topic := p.tp.topic
		tps = append(tps, ck.TopicPartition{Topic: &topic, Partition: p.tp.partition, Offset: ck.Offset(p.stored)})
	}
	co.unstored = co.unstored[:0]
	if len(tps) == 0 {
		return
	}
	if _, err := co.c.StoreOffsets(tps); err != nil {
		co.log.Log(broker.LevelWarning, "kafka", fmt.Sprintf("storing offsets %s failed: %v", describePartitions(tps), err),
			broker.F("broker", co.brokers))
	}
}

// hold queues r for delivery again, no sooner than delay from now, and
// pauses its partition. Callers hold mu.
func (co *Consumer) hold(r *record, delay time.Duration) {
	p := r.part
	if until := time.Now().Add(delay); until.After(p.waitUntil) || len(p.held) == 0 {
		p.waitUntil = until
	}
	co.insertHeld(p, r)
	co.pause(p)
}

func (co *Consumer) insertHeld(p *partition, r *record) {
	off := r.msg.TopicPartition.Offset
	i := len(p.held)
	for i > 0 && p.held[i-1].msg.TopicPartition.Offset > off {
		i--
	}
	p.held = append(p.held, nil)
	copy(p.held[i+1:], p.held[i:])
	p.held[i] = r
}

func (co *Consumer) pause(p *partition) {
	if p.paused {
		return
	}
	p.paused = true
	topic := p.tp.topic
	if err := co.c.Pause([]ck.TopicPartition{{Topic: &topic, Partition: p.tp.partition}}); err != nil {
		co.log.Log(broker.LevelWarning, "kafka", "pause failed: "+err.Error(), broker.F("broker", co.brokers), broker.F("topic", topic))
	}
}

// deadLetter produces r to its dead-letter topic and waits for the broker's
// acknowledgement.
func (co *Consumer) deadLetter(ctx context.Context, r *record, reason string) error {
	p, err := co.dlqProducer(ctx)
	if err != nil {
		return err
	}
	m := r.msg
	dest := co.opts.DeadLetter
	if dest == "" {
		dest = r.part.tp.topic + ".dlq"
	}
	headers := make([]broker.Header, 0, len(m.Headers)+4)
	for _, h := range m.Headers {
		headers = append(headers, broker.Header{Key: h.Key, Value: h.Value})
	}
	headers = append(headers,
		broker.Header{Key: "cello-dead-letter-reason", Value: []byte(reason)},
		broker.Header{Key: "cello-original-topic", Value: []byte(r.part.tp.topic)},
		broker.Header{Key: "cello-original-partition", Value: []byte(strconv.Itoa(int(r.part.tp.partition)))},
		broker.Header{Key: "cello-original-offset", Value: []byte(strconv.FormatInt(int64(m.TopicPartition.Offset), 10))},
	)
	res, err := p.Send(ctx, []broker.OutMessage{{Destination: dest, Key: m.Key, Value: m.Value, Headers: headers}})
	if err == nil && len(res) == 1 {
		err = res[0].Err
	}
	if err != nil {
		co.log.Log(broker.LevelError, "kafka", "dead-lettering to "+dest+" failed: "+err.Error(),
			broker.F("broker", co.brokers), broker.F("topic", r.part.tp.topic))
		return err
	}
	co.log.Log(broker.LevelWarning, "kafka",
		fmt.Sprintf("record %s[%d]@%d dead-lettered to %s: %s", r.part.tp.topic, r.part.tp.partition, m.TopicPartition.Offset, dest, reason),
		broker.F("broker", co.brokers), broker.F("topic", r.part.tp.topic))
	return nil
}

func (co *Consumer) dlqProducer(ctx context.Context) (*Producer, error) {
	co.dlqMu.Lock()
	defer co.dlqMu.Unlock()
	if co.dlq != nil {
		return co.dlq, nil
	}
	p, err := NewProducer(ctx, co.cfg, co.log)
	if err != nil {
		return nil, err
	}
	co.dlq = p
	return p, nil
}

// Commit acknowledges the given deliveries and commits synchronously.
func (co *Consumer) Commit(ctx context.Context, tokens []uint64) error {
	co.lifeMu.RLock()
	defer co.lifeMu.RUnlock()
	if co.isClosed() {
		return fmt.Errorf("kafka consumer: %w", broker.ErrClosed)
	}
	var firstErr error
	for _, t := range tokens {
		if err := co.settle(ctx, broker.Settlement{Token: t, Result: broker.Ack}); err != nil {
			firstErr = err
			break
		}
	}
	co.mu.Lock()
	co.storeOffsets()
	co.mu.Unlock()
	if firstErr != nil {
		return firstErr
	}
	return co.commitSync()
}

func (co *Consumer) commitSync() error {
	_, err := co.c.Commit()
	var kerr ck.Error
	if err != nil && !(errors.As(err, &kerr) && kerr.Code() == ck.ErrNoOffset) {
		return fmt.Errorf("%w: kafka commit in group %s: %v", broker.ErrConnection, co.group, err)
	}
	return nil
}

// commitStored commits stored offsets and logs a failure, for the paths
// where the caller cannot act on it.
func (co *Consumer) commitStored() {
	if err := co.commitSync(); err != nil {
		co.log.Log(broker.LevelWarning, "kafka", err.Error(), broker.F("broker", co.brokers))
	}
}

// Close commits the stored offsets, leaves the group and releases the
// handle. Records not settled by then are fetched again by the group.
func (co *Consumer) Close(ctx context.Context) error {
	co.mu.Lock()
	if co.closed {
		co.mu.Unlock()
		return nil
	}
	co.closed = true
	co.mu.Unlock()

	co.pollMu.Lock()
	defer co.pollMu.Unlock()
	co.lifeMu.Lock()
	defer co.lifeMu.Unlock()
	co.mu.Lock()
	co.storeOffsets()
	co.mu.Unlock()
	co.commitStored()
	err := co.c.Close()
	co.dlqMu.Lock()
	if co.dlq != nil {
		co.dlq.Close(ctx)
	}
	co.dlqMu.Unlock()
	co.log.Log(broker.LevelInfo, "kafka", "consumer closed, left group "+co.group, broker.F("broker", co.brokers))
	if err != nil {
		return fmt.Errorf("%w: closing kafka consumer: %v", broker.ErrConnection, err)
	}
	return nil
}
