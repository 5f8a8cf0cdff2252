package main

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/adapters/etcd"
	"github.com/volattach/volattach/compute"
)

// coreMetrics are what volattachd measures of the core, beside the HTTP
// metrics of adapters/openstack. README "Metrics" says what each tells an
// operator.
type coreMetrics struct {
	commits      *prometheus.CounterVec
	commitTime   prometheus.Histogram
	lockWait     *prometheus.HistogramVec
	stepTime     *prometheus.HistogramVec
	opTime       *prometheus.HistogramVec
	opsOpen      *prometheus.GaugeVec
	transitions  *prometheus.CounterVec
	findings     *prometheus.CounterVec
	lastFindings prometheus.Gauge
}

func newCoreMetrics(reg prometheus.Registerer) *coreMetrics {
	buckets := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	m := &coreMetrics{
		commits: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "volattach", Subsystem: "etcd", Name: "commits_total",
			Help: "Guarded etcd transactions, by result: committed, conflict (a compare failed: a concurrent change, retried by the caller) or error."}, []string{"result"}),
		commitTime: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "volattach", Subsystem: "etcd", Name: "commit_duration_seconds",
			Help: "Latency of one guarded etcd transaction.", Buckets: buckets}),
		lockWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "volattach", Subsystem: "lock", Name: "wait_seconds",
			Help: "Time to acquire a distributed lock, by lock kind (instance or volume) and result.", Buckets: buckets}, []string{"kind", "result"}),
		stepTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "volattach", Subsystem: "operation", Name: "step_duration_seconds",
			Help: "Time an attach or detach operation took to reach each step from the previous one, by table and step reached.", Buckets: buckets}, []string{"table", "step"}),
		opTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "volattach", Subsystem: "operation", Name: "duration_seconds",
			Help: "Time from an operation's first to its terminal step, by table and terminal step.", Buckets: buckets}, []string{"table", "step"}),
		opsOpen: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "volattach", Subsystem: "operation", Name: "open",
			Help: "Attach and detach operations begun and not yet at a terminal step, seen since this process started, by table."}, []string{"table"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "volattach", Name: "transitions_total",
			Help: "Transitions recorded in the history, by table and event."}, []string{"table", "event"}),
		findings: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "volattach", Subsystem: "reconciler", Name: "findings_total",
			Help: "Findings the reconciler acted on, by kind and outcome (repaired, deferred, failed)."}, []string{"kind", "outcome"}),
		lastFindings: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "volattach", Subsystem: "reconciler", Name: "last_pass_findings",
			Help: "Findings of the reconciler's last pass (0 when everything agrees)."}),
	}
	reg.MustRegister(m.commits, m.commitTime, m.lockWait, m.stepTime, m.opTime, m.opsOpen, m.transitions, m.findings, m.lastFindings)
	return m
}

// store wraps a Store to count commits and conflicts.
func (m *coreMetrics) store(s volattach.Store) volattach.Store { return &meteredStore{Store: s, m: m} }

type meteredStore struct {
	volattach.Store
	m *coreMetrics
}

func (s *meteredStore) Commit(ctx context.Context, txn volattach.Txn) (int64, error) {
	start := time.Now()
	rev, err := s.Store.Commit(ctx, txn)
	s.m.commitTime.Observe(time.Since(start).Seconds())
	switch {
	case err == nil:
		s.m.commits.WithLabelValues("committed").Inc()
	case errors.Is(err, volattach.ErrConflict):
		s.m.commits.WithLabelValues("conflict").Inc()
	default:
		s.m.commits.WithLabelValues("error").Inc()
	}
	return rev, err
}

// locker wraps a Locker to time lock acquisition.
func (m *coreMetrics) locker(l volattach.Locker) volattach.Locker {
	return &meteredLocker{Locker: l, m: m}
}

type meteredLocker struct {
	volattach.Locker
	m *coreMetrics
}

func (l *meteredLocker) Lock(ctx context.Context, name string) (volattach.Lock, error) {
	start := time.Now()
	lk, err := l.Locker.Lock(ctx, name)
	kind, _, _ := strings.Cut(name, "/")
	result := "acquired"
	if err != nil {
		result = "failed"
	}
	l.m.lockWait.WithLabelValues(kind, result).Observe(time.Since(start).Seconds())
	return lk, err
}

// terminalSteps are the steps that end an operation.
var terminalSteps = map[string]bool{
	string(compute.StepAttached): true, string(compute.StepDetached): true, string(compute.StepRolledBack): true,
}

// watchHistory follows the history from now on until ctx ends: step
// latencies (the time between an operation's consecutive transitions, by
// the writers' clocks), whole-operation latency and the open operations.
func (m *coreMetrics) watchHistory(ctx context.Context, s *etcd.Store, log logrus.FieldLogger) {
	var mu sync.Mutex
	type seen struct{ first, last time.Time }
	ops := map[string]seen{}
	for {
		for ev := range s.Watch(ctx, 0) {
			if ev.Err != nil {
				if !errors.Is(ev.Err, context.Canceled) {
					log.WithError(ev.Err).Debug("metrics: history watch")
				}
				continue
			}
			tr := ev.Transition
			m.transitions.WithLabelValues(tr.Table, tr.Event).Inc()
			if tr.Table != compute.AttachStepTableName && tr.Table != compute.DetachStepTableName {
				continue
			}
			mu.Lock()
			id := tr.Entity.ID
			o, ok := ops[id]
			if !ok {
				o = seen{first: tr.Time, last: tr.Time}
				m.opsOpen.WithLabelValues(tr.Table).Inc()
			} else {
				m.stepTime.WithLabelValues(tr.Table, tr.To).Observe(tr.Time.Sub(o.last).Seconds())
			}
			o.last = tr.Time
			ops[id] = o
			if terminalSteps[tr.To] {
				m.opTime.WithLabelValues(tr.Table, tr.To).Observe(tr.Time.Sub(o.first).Seconds())
				m.opsOpen.WithLabelValues(tr.Table).Dec()
				delete(ops, id)
			}
			mu.Unlock()
		}
		if ctx.Err() != nil {
			return
		}
		// The stream ended (compacted): start again from now.
	}
}

// reconcilerHook counts the reconciler's findings from its structured log
// entries (compute.Reconciler logs each repair with the finding, whose
// first word is its kind, and each pass with the number found).
type reconcilerHook struct{ m *coreMetrics }

func (h reconcilerHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h reconcilerHook) Fire(e *logrus.Entry) error {
	if e.Data["component"] != "reconciler" {
		return nil
	}
	if f, ok := e.Data["finding"].(string); ok {
		kind, _, _ := strings.Cut(f, " ")
		outcome := "failed"
		switch e.Message {
		case "reconciler: repaired":
			outcome = "repaired"
		case "reconciler: left for another":
			outcome = "deferred"
		}
		h.m.findings.WithLabelValues(kind, outcome).Inc()
	}
	if n, ok := e.Data["found"].(int); ok {
		h.m.lastFindings.Set(float64(n))
	}
	return nil
}
