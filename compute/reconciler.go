package compute

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/volume"
)

// Defaults of ReconcilerConfig.
const (
	DefaultReconcileInterval = time.Minute
	DefaultReconcileGrace    = 2 * time.Minute
	DefaultRetention         = 7 * 24 * time.Hour
	DefaultSweepInterval     = 30 * time.Minute
	DefaultSweepPageRate     = 20
)

// VolumeRepairer is the volume side's repair surface, beside VolumeAPI:
// what a reconciler needs that no attach or detach call offers.
// volume.Service implements it.
type VolumeRepairer interface {
	// Exports lists the exports of the backends that can list them, and
	// names those backends.
	Exports(ctx context.Context) (exports []volume.Export, listed []string, err error)
	// RemoveStaleExport removes an export nothing uses; it refuses one an
	// attachment may use.
	RemoveStaleExport(ctx context.Context, e volume.Export) error
	// RecomputeStatus sets the volume's status to what its attachments
	// derive, through the volume.status table.
	RecomputeStatus(ctx context.Context, volumeID string) (bool, error)
	// FailStuckCreation moves a volume left in creating to error, under
	// the volume lock its creation holds throughout.
	FailStuckCreation(ctx context.Context, volumeID string) (bool, error)
}

var _ VolumeRepairer = (*volume.Service)(nil)

// ReconcilerConfig configures a Reconciler.
type ReconcilerConfig struct {
	// Store, Locker, Volumes and Queue are required: the same ones the API
	// and the host agents use.
	Store   volattach.Store
	Locker  volattach.Locker
	Volumes VolumeAPI
	Queue   HostQueue
	// Repairer is the volume side's repair surface; default: Volumes, when
	// it implements VolumeRepairer. Without one, exports are not audited
	// and a drifting status that unreserve or roll_detaching cannot settle
	// is reported but not repaired.
	Repairer VolumeRepairer
	// Manager makes this a host agent's reconciler: the unfinished
	// operations of its host are run to their end here (Manager.Handle),
	// and its host's guests are audited through its driver. Without one,
	// the operations of a host are queued for that host's agent again.
	Manager *Manager
	// Host and Driver audit the guests of Host without a Manager (the
	// operator's repair command); ignored when Manager is set.
	Host   string
	Driver Driver
	// API is the compute API whose Reconcile finishes what a stopped API
	// call left; default: one built from the fields above.
	API *API
	// Interval is the time between two host passes of Run (default
	// DefaultReconcileInterval): RunHost, whose cost follows this host's
	// instances and the open operations, not the volumes stored.
	Interval time.Duration
	// SweepInterval is the time between two sweeps of Run, full audits
	// of every volume, attachment, mapping, instance, operation and
	// export (Sweep); default DefaultSweepInterval, the first one
	// SweepInterval after Run starts. Negative: Run never sweeps (another
	// reconciler of the deployment does; one or two suffice).
	SweepInterval time.Duration
	// SweepPageRate bounds the pages (volattach.DefaultScanPage records
	// each) a sweep reads per second, so a sweep of a large store spreads
	// its reads over time (default DefaultSweepPageRate: 10,000 records
	// a second). Negative: unpaced.
	SweepPageRate float64
	// Grace is how long an operation may go without a checkpoint, and a
	// volume without a change, before the audit judges it: a younger one
	// may be in the hands of a live API call that holds no lock (default
	// DefaultReconcileGrace). Operations whose agent died are taken again
	// by their host's agent as soon as it runs (its host's pending work is
	// in the store, and the dead agent's instance locks lapsed with its
	// lease); the grace only delays the audit. A negative
	// Grace judges everything at once (tests; an operator who knows no API
	// call is running).
	Grace time.Duration
	// Retention is how long a finished operation's record is kept (its
	// history entries follow the store's own history retention, which a
	// node runs: docs/operations.md); default DefaultRetention, and a
	// negative value keeps the records for ever.
	Retention time.Duration
	Notifier  volattach.Notifier
	Log       logrus.FieldLogger
	Clock     func() time.Time
}

// Reconciler finishes or undoes what stopped half-way and repairs drift
// between the records, the guests and the storage exports (DESIGN section
// 4). An embedder runs one in every host agent (with its Manager) and one
// beside the API and volume side; several may run at once: every repair
// re-checks its finding under the instance lock (then the volume lock,
// inside the volume side), so two reconcilers never undo each other's
// work, and a repair already made by another is found resolved.
//
// Per-entity locks rather than a leader elected through etcd: the locks are
// needed anyway against the live API and agents (a leader would still race
// with them), each host's reconciler must act on its own hypervisor (a
// single leader cannot reach every host's guests), and a reconciler needs
// no extra session or campaign to start working. Duplicate work costs only
// reads: every repair is idempotent and re-checked before it acts.
type Reconciler struct {
	cfg      ReconcilerConfig
	api      *API
	manager  *Manager
	repairer VolumeRepairer
	host     string
	driver   Driver
	log      logrus.FieldLogger
	wake     chan struct{}
	// known holds the instances of this host the last full read of
	// instances found (nil before one): a host pass reads those, and the
	// instances its host's operations name, by Get (hostInstances).
	knownMu sync.Mutex
	known   map[string]bool
	knownAt time.Time
}

// ErrReconcilerNotConfigured is returned by NewReconciler when a required
// dependency is missing.
var ErrReconcilerNotConfigured = errors.New("compute: reconciler needs a store, a locker, a volume API and a host queue")

// NewReconciler returns a Reconciler.
func NewReconciler(cfg ReconcilerConfig) (*Reconciler, error) {
	if cfg.Store == nil || cfg.Locker == nil || cfg.Volumes == nil || cfg.Queue == nil {
		return nil, ErrReconcilerNotConfigured
	}
	if cfg.Log == nil {
		quiet := logrus.New()
		quiet.Out = io.Discard
		cfg.Log = quiet
	}
	if cfg.Notifier == nil {
		cfg.Notifier = volattach.Discard
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultReconcileInterval
	}
	if cfg.Grace == 0 {
		cfg.Grace = DefaultReconcileGrace
	}
	if cfg.Retention == 0 {
		cfg.Retention = DefaultRetention
	}
	if cfg.SweepInterval == 0 {
		cfg.SweepInterval = DefaultSweepInterval
	}
	if cfg.SweepPageRate == 0 {
		cfg.SweepPageRate = DefaultSweepPageRate
	}
	r := &Reconciler{cfg: cfg, manager: cfg.Manager, repairer: cfg.Repairer, host: cfg.Host, driver: cfg.Driver, wake: make(chan struct{}, 1)}
	if r.manager != nil {
		r.host, r.driver = r.manager.cfg.Host, r.manager.cfg.Driver
	}
	if r.repairer == nil {
		r.repairer, _ = cfg.Volumes.(VolumeRepairer)
	}
	r.log = cfg.Log.WithField("component", "reconciler")
	if r.host != "" {
		r.log = r.log.WithField("host", r.host)
	}
	r.api = cfg.API
	if r.api == nil {
		var err error
		r.api, err = NewAPI(APIConfig{Store: cfg.Store, Volumes: cfg.Volumes, Queue: cfg.Queue, Locker: cfg.Locker,
			Notifier: cfg.Notifier, Log: cfg.Log, Clock: cfg.Clock})
		if err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Report is what one pass found and did.
type Report struct {
	// Findings are what the first audit of the pass found, in repair order.
	Findings []Finding
	// Repairs are the repairs attempted, in order.
	Repairs []RepairResult
	// Left are the findings the last audit of the pass still found: what
	// could not be repaired (yet).
	Left []Finding
	// Collected counts the finished operation records removed after their
	// retention.
	Collected int
}

// RepairResult is one repair attempt.
type RepairResult struct {
	Finding Finding
	// Did says what was done ("" when nothing was).
	Did string
	// Err is why the repair failed or was not made.
	Err error
}

// Errors of Repair.
var (
	// ErrNotRepairable: the finding's policy is to report it only.
	ErrNotRepairable = errors.New("compute: reported only; an operator decides")
	// ErrNeedsHost: the repair must touch the guest of an instance on
	// another host; that host's reconciler makes it.
	ErrNeedsHost = errors.New("compute: needs the reconciler of the instance's host")
	// ErrNoVolumeRepairer: the repair needs a VolumeRepairer.
	ErrNoVolumeRepairer = errors.New("compute: needs the volume side's repair surface")
)

// maxRounds bounds the audit-and-repair rounds of one pass: a repair may
// reveal the next problem (a rolled-back mapping leaves an export), so a
// pass audits again after repairing, until nothing new is found.
// maxAttempts bounds the attempts at one repair that fails.
const (
	maxRounds   = 4
	maxAttempts = 2
)

// RunOnce makes one full pass, unpaced: it audits everything (Audit),
// repairs every finding in repair order (resuming unfinished operations
// first), audits again until nothing new is found, and removes finished
// operation records past their retention. A healthy system costs reads
// only. The error joins the failures of the pass; the Report says what was
// done and what is left.
func (r *Reconciler) RunOnce(ctx context.Context) (Report, error) {
	return r.pass(ctx, func() auditScope { return auditScope{exports: true} })
}

// RunHost makes one host pass: RunOnce on what AuditHost reads. It is what
// Run does every Interval.
func (r *Reconciler) RunHost(ctx context.Context) (Report, error) {
	return r.pass(ctx, r.hostScope)
}

// Sweep makes one full pass as RunOnce does, its reads paced at
// SweepPageRate pages a second. It is what Run does every SweepInterval.
func (r *Reconciler) Sweep(ctx context.Context) (Report, error) {
	return r.pass(ctx, func() auditScope { return auditScope{exports: true, pace: pacer(r.cfg.SweepPageRate)} })
}

// hostScope is the scope of a host pass; each call paces afresh.
func (r *Reconciler) hostScope() auditScope {
	return auditScope{host: r.host, hostScope: true}
}

// pass audits in scope, repairs, audits again and collects.
func (r *Reconciler) pass(ctx context.Context, scope func() auditScope) (Report, error) {
	var rep Report
	var last *auditState
	var errs []error
	failed := map[string]error{} // the last failure of each repair that failed
	// done holds the findings repaired, or whose repair is not this
	// reconciler's to make; a repair that failed is tried again in the
	// next round (the failure may be transient: a lock held by a dead
	// holder until its lease expires, a backend timeout).
	done := map[string]bool{}
	attempts := map[string]int{}
	for round := 0; ; round++ {
		st, err := r.load(ctx, scope())
		if err != nil {
			return rep, errors.Join(append(errs, err)...)
		}
		last = st
		findings := classify(st)
		if round == 0 {
			rep.Findings = findings
		}
		rep.Left = findings
		if round == maxRounds {
			break
		}
		var todo []Finding
		for _, f := range findings {
			key := f.ID() + "|" + string(f.Action)
			if f.Action != RepairNone && !done[key] && attempts[key] < maxAttempts {
				todo = append(todo, f)
			}
		}
		if len(todo) == 0 {
			break
		}
		for _, f := range todo {
			if err := ctx.Err(); err != nil {
				return rep, errors.Join(append(errs, err)...)
			}
			key := f.ID() + "|" + string(f.Action)
			attempts[key]++
			did, err := r.Repair(ctx, f)
			rep.Repairs = append(rep.Repairs, RepairResult{Finding: f, Did: did, Err: err})
			log := r.log.WithField("finding", f.String())
			switch {
			case err == nil:
				log.WithField("did", did).Info("reconciler: repaired")
			case notMine(err):
				log.WithError(err).Info("reconciler: left for another")
			default:
				log.WithError(err).Warn("reconciler: repair failed")
				failed[f.ID()] = fmt.Errorf("%s: %w", f, err)
				continue
			}
			delete(failed, f.ID())
			done[key] = true
		}
	}
	for _, f := range rep.Left {
		if err, ok := failed[f.ID()]; ok {
			errs = append(errs, err) // still there: the pass failed on it
		}
	}
	n, err := r.collect(ctx, last)
	rep.Collected = n
	if err != nil {
		errs = append(errs, err)
	}
	return rep, errors.Join(errs...)
}

// notMine reports whether a repair's error says the repair is not this
// reconciler's to make (it is not a failure of the pass).
func notMine(err error) bool {
	return errors.Is(err, ErrNeedsHost) || errors.Is(err, ErrNotRepairable) || errors.Is(err, ErrNoVolumeRepairer)
}

// Audit reads the records, this host's guests and the backends' exports
// and returns every stuck or drifting item, in repair order. It writes
// nothing (a dry run). It reads each kind of record in pages at one
// revision (volattach.Scan).
func (r *Reconciler) Audit(ctx context.Context) ([]Finding, error) {
	st, err := r.load(ctx, auditScope{exports: true})
	if err != nil {
		return nil, err
	}
	return classify(st), nil
}

// AuditHost is Audit for this host only (for a reconciler without a host:
// the shelved_offloaded instances, which have none): its instances and
// their guests, their mappings, the unfinished operations of this host or
// on its instances, and the volumes and attachments those and the guests'
// disks name. It reads every instance, mapping and operation in pages of
// values, and the volumes it judges one by one; the rest of the store
// (volumes no instance of the host uses, exports) is the sweep's.
func (r *Reconciler) AuditHost(ctx context.Context) ([]Finding, error) {
	st, err := r.load(ctx, r.hostScope())
	if err != nil {
		return nil, err
	}
	return classify(st), nil
}

// Trigger asks Run for a pass now (for example when an embedder sees a
// lock holder's lease expire). It never blocks.
func (r *Reconciler) Trigger() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run makes a host pass (RunHost) at once, then every Interval and
// whenever Trigger is called, and a paced full pass (Sweep) every
// SweepInterval, until ctx ends; it returns ctx's error. Failed passes are
// logged and retried at the next tick.
func (r *Reconciler) Run(ctx context.Context) error {
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	var sweep <-chan time.Time
	if r.cfg.SweepInterval > 0 {
		st := time.NewTicker(r.cfg.SweepInterval)
		defer st.Stop()
		sweep = st.C
	}
	kind, run := "host", r.RunHost
	for {
		rep, err := run(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		log := r.log.WithFields(logrus.Fields{"pass": kind, "found": len(rep.Findings), "repairs": len(rep.Repairs), "left": len(rep.Left), "collected": rep.Collected})
		switch {
		case err != nil:
			log.WithError(err).Warn("reconciler: pass ended with errors")
		case len(rep.Findings) > 0 || rep.Collected > 0:
			log.Info("reconciler: pass done")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			kind, run = "host", r.RunHost
		case <-r.wake:
			kind, run = "host", r.RunHost
		case <-sweep:
			kind, run = "sweep", r.Sweep
		}
	}
}
