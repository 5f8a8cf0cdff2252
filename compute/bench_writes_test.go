package compute_test

import (
	"context"
	"testing"

	"github.com/volattach/volattach/adapters/etcd/etcdtest"
	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/volume"
)

// BenchmarkEtcdWrites counts the etcd writes of one synchronous attach and
// of one detach, at the etcd client (etcdtest.WriteCounter: KV Put,
// DeleteRange, write Txns, lease Grant/Revoke), on the stack of
// BenchmarkAttachDetach: b.N instances with a volume each, after one cycle
// on another pair that makes the sessions. It attaches all b.N one after
// the other, then detaches them: a write the agent makes after a call
// returns (the queue's done, a lock release) falls in the next call's
// window, of the same kind, so the counts are exact but for the last
// call's trailing writes (at most 1/b.N each). Beside each, the etcd
// revision delta (a write Txn whose compare fails, or a lease RPC, makes
// none), and a log line with the writes by RPC kind and key class, the
// reads (Range, read-only Txn) and the keep-alives (not writes).
//
//	go test -run '^$' -bench EtcdWrites -benchtime 20x ./compute/
func BenchmarkEtcdWrites(b *testing.B) {
	wc := etcdtest.CountWrites(b)
	e := newEnv(b)
	ctx := context.Background()
	attach := func(i *compute.Instance, v *volume.Volume) {
		if _, err := e.api.AttachVolume(ctx, compute.AttachRequest{InstanceUUID: i.UUID, VolumeID: v.ID}); err != nil {
			b.Fatal(err)
		}
	}
	detach := func(i *compute.Instance, v *volume.Volume) {
		if err := e.api.DetachVolume(ctx, compute.DetachRequest{InstanceUUID: i.UUID, VolumeID: v.ID}); err != nil {
			b.Fatal(err)
		}
	}
	i, v := e.instance(), e.volume()
	attach(i, v)
	detach(i, v)
	insts := make([]*compute.Instance, b.N)
	vols := make([]*volume.Volume, b.N)
	for k := range b.N {
		insts[k], vols[k] = e.instance(), e.volume()
	}
	w0, r0 := wc.Counts(), etcdtest.Revision(b)
	b.ResetTimer()
	for k := range b.N {
		attach(insts[k], vols[k])
	}
	w1, r1 := wc.Counts(), etcdtest.Revision(b)
	for k := range b.N {
		detach(insts[k], vols[k])
	}
	w2, r2 := wc.Counts(), etcdtest.Revision(b)
	b.StopTimer()
	n := int64(b.N)
	attached, detached := w1.Sub(w0), w2.Sub(w1)
	b.ReportMetric(float64(attached.Writes())/float64(n), "writes/attach")
	b.ReportMetric(float64(detached.Writes())/float64(n), "writes/detach")
	b.ReportMetric(float64(r1-r0)/float64(n), "revisions/attach")
	b.ReportMetric(float64(r2-r1)/float64(n), "revisions/detach")
	b.Logf("attach: %s", attached.Per(n))
	b.Logf("detach: %s", detached.Per(n))
}
