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

// BenchmarkAttachDetach runs full attach+detach cycles (API, host agent,
// volume service, file backend, fake hypervisor, embedded etcd) on 1, 8 and
// 64 instances at once, each instance attaching and detaching a volume of
// its own. It reports cycles/s, p50/p99 cycle latency, and at one instance
// the etcd writes of one attach: the store commits (guarded transactions)
// and every etcd write (revisions: commits, locks, queue). Beside it, at the
// same concurrency, the raw guarded transaction (one Commit) rate.
func BenchmarkAttachDetach(b *testing.B) {
	for _, conc := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("instances=%d", conc), func(b *testing.B) {
			e := newEnv(b, withWorkers(conc))
			ctx := context.Background()
			insts := make([]*compute.Instance, conc)
			vols := make([]*volume.Volume, conc)
			for k := range conc {
				insts[k], vols[k] = e.instance(), e.volume()
			}
			var (
				next      atomic.Int64
				mu        sync.Mutex
				latencies []time.Duration
				commits   int64
				revisions int64
				measured  int64
			)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for k := range conc {
				wg.Go(func() {
					i, v := insts[k], vols[k]
					for next.Add(1) <= int64(b.N) {
						t0 := time.Now()
						c0, r0 := e.store.Commits(), etcdtest.Revision(b)
						if _, err := e.api.AttachVolume(ctx, compute.AttachRequest{InstanceUUID: i.UUID, VolumeID: v.ID}); err != nil {
							b.Error(err)
							return
						}
						c1, r1 := e.store.Commits(), etcdtest.Revision(b)
						if err := e.api.DetachVolume(ctx, compute.DetachRequest{InstanceUUID: i.UUID, VolumeID: v.ID}); err != nil {
							b.Error(err)
							return
						}
						d := time.Since(t0)
						mu.Lock()
						latencies = append(latencies, d)
						if conc == 1 {
							commits += c1 - c0
							revisions += r1 - r0
							measured++
						}
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			slices.Sort(latencies)
			if len(latencies) == 0 {
				return
			}
			b.ReportMetric(float64(len(latencies))/elapsed.Seconds(), "cycles/s")
			b.ReportMetric(ms(latencies[len(latencies)/2]), "p50-ms")
			b.ReportMetric(ms(latencies[(len(latencies)*99)/100]), "p99-ms")
			if measured > 0 {
				b.ReportMetric(float64(commits)/float64(measured), "commits/attach")
				b.ReportMetric(float64(revisions)/float64(measured), "etcd-writes/attach")
			}
		})
		b.Run(fmt.Sprintf("raw-guarded-txn/writers=%d", conc), func(b *testing.B) {
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
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "txn/s")
		})
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
