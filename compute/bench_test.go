package compute_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/adapters/etcd/etcdtest"
	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/volume"
)

func withWorkers(n int) envOption {
	return func(_ *compute.APIConfig, m *compute.ManagerConfig) { m.Workers = n }
}

// rawTxnPerSec holds, per writer count, the raw guarded transaction rate
// measured earlier in the same run, for BenchmarkAttachDetach's ratio.
var rawTxnPerSec sync.Map // int -> float64

// BenchmarkAttachDetach runs full attach+detach cycles (API, host agent,
// volume service, file backend, fake hypervisor, embedded etcd) on 1, 8 and
// 64 instances at once, each instance attaching and detaching a volume of
// its own. Before each, at the same concurrency and against the same etcd,
// it measures the raw guarded transaction (one Store.Commit: compare a
// revision, put one record) rate. Each instances=N reports cycles/s, p50
// and p99 cycle latency, the etcd writes per cycle counted at the client
// (etcdtest.WriteCounter; the revision delta beside it), and vs-raw:
// cycles/s over (raw txn/s / writes per cycle), the share of etcd's raw
// write rate the protocol turns into cycles (the aim at 64: >= 0.5).
// An instances=N op is a round of N cycles, one per instance. One level
// alone, with its raw rate: -bench 'AttachDetach$/=64$'.
//
//	go test -run '^$' -bench 'AttachDetach$' -benchtime 5s ./compute/
func BenchmarkAttachDetach(b *testing.B) {
	for _, conc := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("raw-guarded-txn-writers=%d", conc), func(b *testing.B) {
			benchRawTxn(b, conc)
		})
		b.Run(fmt.Sprintf("instances=%d", conc), func(b *testing.B) {
			benchCycles(b, conc)
		})
	}
}

// benchRawTxn commits b.N guarded transactions from conc writers, each
// writer moving a record of its own (no conflicts).
func benchRawTxn(b *testing.B, conc int) {
	wc := etcdtest.CountWrites(b)
	store := etcdtest.Store(b)
	ctx := context.Background()
	recs := make([]*compute.Instance, conc)
	for k := range recs {
		recs[k] = &compute.Instance{UUID: volume.NewUUID(), VMState: compute.VMActive}
		if _, err := store.Commit(ctx, volattach.Txn{Puts: []volattach.Record{recs[k]}}); err != nil {
			b.Fatal(err)
		}
	}
	var next atomic.Int64
	w0 := wc.Counts()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for k := range conc {
		wg.Go(func() {
			r := recs[k]
			for next.Add(1) <= int64(b.N) {
				if _, err := store.Commit(ctx, volattach.Txn{Puts: []volattach.Record{r}}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	rate := float64(b.N) / time.Since(start).Seconds()
	b.StopTimer()
	b.ReportMetric(rate, "txn/s")
	b.ReportMetric(float64(wc.Counts().Sub(w0).Writes())/float64(b.N), "writes/txn")
	rawTxnPerSec.Store(conc, rate)
}

// benchCycles runs b.N attach+detach cycles on each of conc instances at
// once: an op is a round of conc cycles (not in lockstep), so every
// instance is busy for the whole run whatever b.N is.
func benchCycles(b *testing.B, conc int) {
	wc := etcdtest.CountWrites(b)
	e := newEnv(b, withWorkers(conc))
	ctx := context.Background()
	insts := make([]*compute.Instance, conc)
	vols := make([]*volume.Volume, conc)
	for k := range conc {
		insts[k], vols[k] = e.instance(), e.volume()
	}
	var (
		mu        sync.Mutex
		latencies []time.Duration
	)
	w0, r0 := wc.Counts(), etcdtest.Revision(b)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for k := range conc {
		wg.Go(func() {
			i, v := insts[k], vols[k]
			for range b.N {
				t0 := time.Now()
				if _, err := e.api.AttachVolume(ctx, compute.AttachRequest{InstanceUUID: i.UUID, VolumeID: v.ID}); err != nil {
					b.Error(err)
					return
				}
				if err := e.api.DetachVolume(ctx, compute.DetachRequest{InstanceUUID: i.UUID, VolumeID: v.ID}); err != nil {
					b.Error(err)
					return
				}
				d := time.Since(t0)
				mu.Lock()
				latencies = append(latencies, d)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if len(latencies) == 0 {
		return
	}
	cycles := int64(len(latencies))
	w := wc.Counts().Sub(w0)
	revs := etcdtest.Revision(b) - r0
	perSec := float64(cycles) / elapsed.Seconds()
	writes := float64(w.Writes()) / float64(cycles)
	b.ReportMetric(perSec, "cycles/s")
	b.ReportMetric(ms(quantile(latencies, 0.50)), "p50-ms")
	b.ReportMetric(ms(quantile(latencies, 0.99)), "p99-ms")
	b.ReportMetric(writes, "writes/cycle")
	b.ReportMetric(float64(revs)/float64(cycles), "revisions/cycle")
	if raw, ok := rawTxnPerSec.Load(conc); ok && writes > 0 {
		b.ReportMetric(perSec/(raw.(float64)/writes), "vs-raw")
	}
	b.Logf("instances=%d cycles=%d per cycle: %s", conc, cycles, w.Per(cycles))
}

// quantile returns the q-quantile of ds (sorting ds): the sample at index
// len*q, the slowest one for p99 of fewer than 100 samples.
func quantile(ds []time.Duration, q float64) time.Duration {
	slices.Sort(ds)
	return ds[min(len(ds)-1, int(float64(len(ds))*q))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
