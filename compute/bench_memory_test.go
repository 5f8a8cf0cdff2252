package compute_test

import (
	"context"
	"testing"

	"github.com/volattach/volattach/adapters/etcd/etcdtest"
	"github.com/volattach/volattach/compute"
)

// BenchmarkAttachMemory reports the bytes and allocations of one
// attach+detach cycle on the client side: the stack of BenchmarkEtcdWrites
// (API, host agent, volume service, file backend, fake hypervisor) with
// etcd in a child process (etcdtest.StartProcess), so B/op and allocs/op
// leave out the server's work (the test binary's idle embedded etcd from
// TestMain still ticks, a few allocations a second). Beside them, the etcd
// writes and the unary RPCs (writes and reads) of a cycle: most bytes are
// per RPC (gRPC stream setup, request and response). Where the bytes go:
//
//	go test -run '^$' -bench AttachMemory -memprofile mem.out ./compute/
//	go tool pprof -sample_index=alloc_space -top compute.test mem.out
func BenchmarkAttachMemory(b *testing.B) {
	endpoints := etcdtest.StartProcess(b)
	b.Run("etcd=process", func(b *testing.B) {
		wc := etcdtest.NewWriteCounter(nil) // no classifier: it would allocate per write
		etcdtest.UseClient(b, etcdtest.NewCountingClient(b, endpoints, wc))
		e := newEnv(b)
		ctx := context.Background()
		i, v := e.instance(), e.volume()
		cycle := func() {
			if _, err := e.api.AttachVolume(ctx, compute.AttachRequest{InstanceUUID: i.UUID, VolumeID: v.ID}); err != nil {
				b.Fatal(err)
			}
			if err := e.api.DetachVolume(ctx, compute.DetachRequest{InstanceUUID: i.UUID, VolumeID: v.ID}); err != nil {
				b.Fatal(err)
			}
		}
		cycle() // sessions and caches, made once
		w0 := wc.Counts()
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			cycle()
		}
		b.StopTimer()
		w, n := wc.Counts().Sub(w0), float64(b.N)
		b.ReportMetric(float64(w.Writes())/n, "writes/cycle")
		b.ReportMetric(float64(w.Writes()+w.Range+w.ReadTxn)/n, "rpcs/cycle")
	})
}
