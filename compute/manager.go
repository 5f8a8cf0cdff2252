package compute

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/volattach/volattach"
)

// ManagerConfig configures a Manager.
type ManagerConfig struct {
	// Host is the compute host this agent serves; its queue is watched.
	Host string
	// Store, Locker, Queue, Volumes and Driver are required.
	Store   volattach.Store
	Locker  volattach.Locker
	Queue   HostQueue
	Volumes VolumeAPI
	Driver  Driver
	// Notifier receives the end and error notifications.
	Notifier volattach.Notifier
	Log      logrus.FieldLogger
	// Workers is how many operations run at once (default 16); operations
	// on one instance still run one at a time, under its lock.
	Workers int
	// RetryInterval is the first wait before resuming an operation that
	// could not progress; it doubles up to RetryMax (defaults 200ms, 30s).
	RetryInterval time.Duration
	RetryMax      time.Duration
	// ConflictRetries bounds the re-reads of an instance changed by a
	// concurrent request under a final commit (default 100).
	ConflictRetries int
	Clock           func() time.Time
}

// Manager is the host agent (upstream nova.compute.manager.ComputeManager,
// the volume attach part): it takes its host's operations from the queue
// and runs each to its end under the instance's distributed lock, every
// write fenced by that lock, checkpointing after every side effect. An
// operation whose agent died is taken again (its queue claim lapses with
// the agent's lease) and resumed from its last checkpoint.
type Manager struct {
	cfg    ManagerConfig
	runner *runner
	log    logrus.FieldLogger
}

// ErrManagerNotConfigured is returned by NewManager when a required
// dependency is missing.
var ErrManagerNotConfigured = errors.New("compute: manager needs a host, a store, a locker, a queue, a volume API and a driver")

// NewManager returns a Manager.
func NewManager(cfg ManagerConfig) (*Manager, error) {
	if cfg.Host == "" || cfg.Store == nil || cfg.Locker == nil || cfg.Queue == nil || cfg.Volumes == nil || cfg.Driver == nil {
		return nil, ErrManagerNotConfigured
	}
	if cfg.Notifier == nil {
		cfg.Notifier = volattach.Discard
	}
	cfg.Log = volattach.LoggerOrDiscard(cfg.Log)
	if cfg.Workers <= 0 {
		cfg.Workers = 16
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = 200 * time.Millisecond
	}
	if cfg.RetryMax < cfg.RetryInterval {
		cfg.RetryMax = max(30*time.Second, cfg.RetryInterval)
	}
	if cfg.ConflictRetries <= 0 {
		cfg.ConflictRetries = 100
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	log := cfg.Log.WithField("host", cfg.Host)
	return &Manager{cfg: cfg, log: log, runner: &runner{
		store: cfg.Store, volumes: cfg.Volumes, driver: cfg.Driver, notify: cfg.Notifier,
		log: log, now: cfg.Clock, conflictRetries: cfg.ConflictRetries,
	}}, nil
}

// Run takes operations from the host's queue and runs them, up to Workers
// at once, until ctx ends; it returns ctx's error. Operations interrupted by
// the end of ctx are released to be taken again. One goroutine takes work
// from the queue: a claim belongs to the agent, not to a goroutine, so two
// concurrent takers of one agent could be handed the same operation.
func (m *Manager) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, m.cfg.Workers)
	wait := m.cfg.RetryInterval
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		id, _, err := m.cfg.Queue.Next(ctx, m.cfg.Host)
		if err != nil {
			<-slots
			if ctx.Err() != nil {
				return ctx.Err()
			}
			m.log.WithError(err).Warn("taking work from the queue failed")
			if !pause(ctx, wait) {
				return ctx.Err()
			}
			wait = min(2*wait, m.cfg.RetryMax)
			continue
		}
		wait = m.cfg.RetryInterval
		wg.Go(func() {
			defer func() { <-slots }()
			m.serve(ctx, id)
		})
	}
}

// serve runs operation id until it ends, resuming it after a pause when it
// cannot progress, and reports its result on the queue.
func (m *Manager) serve(ctx context.Context, id string) {
	log := m.log.WithField("operation", id)
	wait := m.cfg.RetryInterval
	for {
		res, err := m.Handle(ctx, id)
		var later *RetryLaterError
		switch {
		case err == nil:
		case ctx.Err() != nil:
			m.release(id, log)
			return
		case errors.As(err, &later) || errors.Is(err, volattach.ErrLockLost):
			log.WithError(err).Info("operation paused; resuming later")
			if !pause(ctx, wait) {
				m.release(id, log)
				return
			}
			wait = min(2*wait, m.cfg.RetryMax)
			continue
		default:
			log.WithError(err).Error("operation cannot run")
			res = OperationResult{Operation: id, Error: operationError(err)}
		}
		if err := m.cfg.Queue.Done(ctx, m.cfg.Host, id, encodeResult(res)); err != nil {
			// A lapsed claim: another agent took the operation and reports
			// it (the run is idempotent).
			log.WithError(err).Warn("could not report the operation's result")
		}
		return
	}
}

func (m *Manager) release(id string, log logrus.FieldLogger) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.cfg.Queue.Release(ctx, m.cfg.Host, id); err != nil {
		log.WithError(err).Info("could not release the operation; its claim lapses with the agent's lease")
	}
}

// permanent reports whether a read failed for good: the record is missing
// or does not decode. Anything else (etcd unreachable, a timeout) passes.
func permanent(err error) bool {
	return errors.Is(err, volattach.ErrNotFound) || errors.Is(err, volattach.ErrCorrupt)
}

// pause waits d or until ctx ends; it reports whether to go on.
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Handle runs operation id of this host to its end under the instance's
// lock and returns its result. It is what Run does for each queued
// operation, exposed for reconcilers and tests. A *RetryLaterError means
// the operation must be handled again later.
func (m *Manager) Handle(ctx context.Context, id string) (OperationResult, error) {
	op := &Operation{ID: id}
	if err := m.cfg.Store.Get(ctx, op); err != nil {
		if permanent(err) {
			return OperationResult{}, fmt.Errorf("operation %s: %w", id, err)
		}
		return OperationResult{}, &RetryLaterError{Operation: id, Err: err}
	}
	if op.Host != m.cfg.Host {
		return OperationResult{}, fmt.Errorf("operation %s belongs to host %q, not %q", id, op.Host, m.cfg.Host)
	}
	if op.Done() {
		return resultOf(op), nil
	}
	// The run stops as soon as the lock is lost (volattach.WithLock): its
	// writes would be refused by the fence anyway, and its side effects
	// must not go on.
	locked := false
	err := volattach.WithLock(ctx, m.cfg.Locker, volattach.InstanceLock(op.InstanceUUID), m.log, func(lctx context.Context, lk volattach.Lock) error {
		locked = true
		// Re-read under the lock: another run may have moved it meanwhile.
		if err := m.cfg.Store.Get(lctx, op); err != nil {
			return &RetryLaterError{Operation: id, Step: op.Step, Err: err}
		}
		if err := m.runner.runHolding(lctx, op, lk); err != nil {
			select {
			case <-lk.Lost():
				return fmt.Errorf("%w: %w", volattach.ErrLockLost, err)
			default:
			}
			return err
		}
		return nil
	})
	switch {
	case err != nil && !locked:
		return OperationResult{}, &RetryLaterError{Operation: id, Step: op.Step, Err: err}
	case err != nil:
		return OperationResult{}, err
	}
	return resultOf(op), nil
}
