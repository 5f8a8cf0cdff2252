package compute_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/volume"
)

// recOption changes a reconciler's configuration.
type recOption func(*compute.ReconcilerConfig)

// recAPISide makes the reconciler the API's: no host, no driver.
func recAPISide(c *compute.ReconcilerConfig) { c.Manager = nil }

// recNew returns a host reconciler for the test host (with a
// Manager sharing the env's configuration) whose clock runs an hour ahead,
// so everything the test set up is past the grace period.
func (e *env) recNew(opts ...recOption) *compute.Reconciler {
	e.t.Helper()
	mcfg := e.mcfg
	if mcfg.Host == "" {
		mcfg.Host = testHost // an env without a running agent
	}
	m, err := compute.NewManager(mcfg)
	if err != nil {
		e.t.Fatal(err)
	}
	cfg := compute.ReconcilerConfig{
		Store: e.store, Locker: e.locker, Volumes: e.mcfg.Volumes, Queue: e.mcfg.Queue,
		Repairer: e.volumes, Manager: m,
		Clock: func() time.Time { return time.Now().Add(time.Hour) },
	}
	for _, o := range opts {
		o(&cfg)
	}
	r, err := compute.NewReconciler(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// recRevision returns the store's current revision.
func (e *env) recRevision() int64 {
	e.t.Helper()
	rev, err := e.raw.Revision(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return rev
}

// recRunOnce makes one reconcile pass and requires it to leave nothing.
func (e *env) recRunOnce(r *compute.Reconciler) compute.Report {
	e.t.Helper()
	rep, err := r.RunOnce(ctxT(e.t))
	if err != nil {
		e.t.Fatalf("reconcile: %v\nreport: %+v", err, rep)
	}
	if len(rep.Left) > 0 {
		e.t.Fatalf("left after reconciling: %v", rep.Left)
	}
	return rep
}

func TestReconcileHealthySystemWritesNothing(t *testing.T) {
	e := newEnv(t)
	i, v := e.instance(), e.volume()
	e.attach(i, v)
	e.volume() // an available one too
	r := e.recNew()
	before := e.recRevision()
	rep := e.recRunOnce(r)
	if len(rep.Findings) != 0 || len(rep.Repairs) != 0 || rep.Collected != 0 {
		t.Fatalf("healthy system: %+v", rep)
	}
	if after := e.recRevision(); after != before {
		t.Fatalf("a reconcile of a healthy system wrote: revision %d -> %d", before, after)
	}
}

func TestReconcileDetachingWithoutOperation(t *testing.T) {
	e := newEnv(t)
	i, v := e.instance(), e.volume()
	e.attach(i, v)
	// The API stopped between begin_detaching and recording the operation.
	if err := e.volumes.BeginDetaching(ctxT(t), v.ID); err != nil {
		t.Fatal(err)
	}
	r := e.recNew()
	rep := e.recRunOnce(r)
	if len(rep.Findings) != 1 || rep.Findings[0].Kind != compute.FindingVolumeStuck {
		t.Fatalf("findings %v", rep.Findings)
	}
	e.requireAttached(i, v, "/dev/vdb")
	if st, _ := e.volumeState(v.ID); st != volume.StatusInUse {
		t.Fatalf("status %s", st)
	}
	e.requireHistoryOnRows()
}

// BenchmarkReconcileHealthy measures one reconcile pass over a healthy
// deployment of n attached volumes (the cost every agent pays each
// Interval): reads only.
func BenchmarkReconcileHealthy(b *testing.B) {
	for _, n := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("volumes=%d", n), func(b *testing.B) {
			e := newEnv(b)
			for range n {
				e.attach(e.instance(), e.volume())
			}
			r := e.recNew()
			before := e.recRevision()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				rep, err := r.RunOnce(context.Background())
				if err != nil || len(rep.Findings) > 0 {
					b.Fatalf("healthy pass: %v %v", err, rep.Findings)
				}
			}
			b.StopTimer()
			if e.recRevision() != before {
				b.Fatal("a healthy pass wrote")
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/float64(n), "µs/volume")
		})
	}
}
