package compute_test

import (
	"context"
	"testing"

	"github.com/volattach/volattach/adapters/etcd/etcdtest"
	"github.com/volattach/volattach/compute"
)

// BenchmarkEtcdWrites counts the etcd writes of one synchronous attach and
// of one detach, at the etcd client (etcdtest.WriteCounter: KV Put,
// DeleteRange, write Txns, lease Grant/Revoke), on the stack of
// BenchmarkAttachDetach with one instance and one volume, after one cycle
// that makes the sessions. The windows are contiguous: attach's from the
// previous detach's return to attach's return, detach's from there to its
// return, so a write the agent makes after a call returns (the queue's
// done, a lock release) counts for the next call and the sum per cycle is
// exact. Beside each, the
// etcd revision delta (a write Txn whose compare fails, or a lease RPC,
// makes none), and a log line with the writes by RPC kind and the
// keep-alives (not writes).
//
//	go test -run '^$' -bench EtcdWrites -benchtime 20x ./compute/
func BenchmarkEtcdWrites(b *testing.B) {
	wc := etcdtest.CountWrites(b)
	e := newEnv(b)
	ctx := context.Background()
	i, v := e.instance(), e.volume()
	// One cycle first, so the sessions (a lease grant each) are made.
	if _, err := e.api.AttachVolume(ctx, compute.AttachRequest{InstanceUUID: i.UUID, VolumeID: v.ID}); err != nil {
		b.Fatal(err)
	}
	if err := e.api.DetachVolume(ctx, compute.DetachRequest{InstanceUUID: i.UUID, VolumeID: v.ID}); err != nil {
		b.Fatal(err)
	}
	var attach, detach etcdtest.WriteCounts
	var attachRevs, detachRevs int64
	w0, r0 := wc.Counts(), etcdtest.Revision(b)
	b.ResetTimer()
	for range b.N {
		if _, err := e.api.AttachVolume(ctx, compute.AttachRequest{InstanceUUID: i.UUID, VolumeID: v.ID}); err != nil {
			b.Fatal(err)
		}
		w1, r1 := wc.Counts(), etcdtest.Revision(b)
		if err := e.api.DetachVolume(ctx, compute.DetachRequest{InstanceUUID: i.UUID, VolumeID: v.ID}); err != nil {
			b.Fatal(err)
		}
		w2, r2 := wc.Counts(), etcdtest.Revision(b)
		attach, detach = attach.Add(w1.Sub(w0)), detach.Add(w2.Sub(w1))
		attachRevs += r1 - r0
		detachRevs += r2 - r1
		w0, r0 = w2, r2
	}
	b.StopTimer()
	n := int64(b.N)
	b.ReportMetric(float64(attach.Writes())/float64(n), "writes/attach")
	b.ReportMetric(float64(detach.Writes())/float64(n), "writes/detach")
	b.ReportMetric(float64(attachRevs)/float64(n), "revisions/attach")
	b.ReportMetric(float64(detachRevs)/float64(n), "revisions/detach")
	b.Logf("attach: %s", attach.Per(n))
	b.Logf("detach: %s", detach.Per(n))
}
