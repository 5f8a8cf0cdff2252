package compute_test

import (
	"context"
	"fmt"
	"testing"

	"pgregory.net/rapid"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/volume"
)

// recDrift is one way the records, the guests and the volume side drift
// apart behind volattach's back (a crash between two writes, an admin's
// hand, a hypervisor that lost a disk).
type recDrift struct {
	name  string
	apply func(e *env, insts []*compute.Instance, vols []*volume.Volume, v, i int)
}

// recMappingOf returns the mapping of the volume, on whichever instance.
func (e *env) recMappingOf(insts []*compute.Instance, v *volume.Volume) *compute.BlockDeviceMapping {
	for _, inst := range insts {
		if m := e.mapping(inst.UUID, v.ID); m != nil {
			return m
		}
	}
	return nil
}

var recDrifts = []recDrift{
	{"the compute side lost the mapping", func(e *env, insts []*compute.Instance, vols []*volume.Volume, v, _ int) {
		if m := e.recMappingOf(insts, vols[v]); m != nil {
			inst := e.reload(&compute.Instance{UUID: m.InstanceUUID})
			delete(inst.BlockDevices, m.VolumeID)
			e.recPut([]volattach.Record{inst}, m)
		}
	}},
	{"the volume side detached alone", func(e *env, insts []*compute.Instance, vols []*volume.Volume, v, _ int) {
		if m := e.recMappingOf(insts, vols[v]); m != nil && m.AttachmentID != "" {
			_ = e.volumes.Detach(context.Background(), m.VolumeID, m.AttachmentID)
		}
	}},
	{"the guest lost the disk", func(e *env, insts []*compute.Instance, vols []*volume.Volume, v, _ int) {
		if m := e.recMappingOf(insts, vols[v]); m != nil && m.ConnectionInfo != nil {
			_ = e.driver.DetachVolume(context.Background(), m.InstanceUUID, *m.ConnectionInfo, compute.DiskInfo{Serial: m.VolumeID})
		}
	}},
	{"a guest gained an unrecorded disk", func(e *env, insts []*compute.Instance, vols []*volume.Volume, v, i int) {
		if !e.recHasDisk(insts[i].UUID, vols[v].ID) {
			e.recGuestDisk(insts[i].UUID, vols[v].ID, fmt.Sprintf("sd%c", 'q'+v))
		}
	}},
	{"begin_detaching with no detach recorded", func(e *env, _ []*compute.Instance, vols []*volume.Volume, v, _ int) {
		_ = e.volumes.BeginDetaching(context.Background(), vols[v].ID)
	}},
	{"a reserve nobody followed up", func(e *env, _ []*compute.Instance, vols []*volume.Volume, v, _ int) {
		_ = e.volumes.Reserve(context.Background(), vols[v].ID)
	}},
	{"a reservation with no mapping", func(e *env, insts []*compute.Instance, vols []*volume.Volume, v, i int) {
		_, _ = e.volumes.AttachmentCreate(context.Background(), vols[v].ID, insts[i].UUID, nil, "")
	}},
	{"the volume's status was written by hand", func(e *env, _ []*compute.Instance, vols []*volume.Volume, v, _ int) {
		stored, err := e.volumes.GetVolume(context.Background(), vols[v].ID)
		if err != nil {
			e.t.Fatal(err)
		}
		switch stored.Status {
		case volume.StatusAvailable:
			stored.Status, stored.AttachStatus = volume.StatusInUse, volume.AttachAttached
		case volume.StatusInUse:
			stored.Status, stored.AttachStatus = volume.StatusAvailable, volume.AttachDetached
		default:
			return
		}
		e.recPut([]volattach.Record{stored})
	}},
	{"the instance's device index was cleared", func(e *env, insts []*compute.Instance, _ []*volume.Volume, _, i int) {
		e.update(insts[i], func(inst *compute.Instance) { inst.BlockDevices = nil })
	}},
	{"the mapping names a lost attachment", func(e *env, insts []*compute.Instance, vols []*volume.Volume, v, _ int) {
		if m := e.recMappingOf(insts, vols[v]); m != nil {
			m.AttachmentID = "lost"
			e.recPut([]volattach.Record{m})
		}
	}},
}

// TestReconcileRepairsAnyDrift draws attachments of three volumes to two
// instances, then one to four drifts of any kind on any of them, and
// reconciles once.
func TestReconcileRepairsAnyDrift(t *testing.T) {
	e := newEnv(t)
	r := e.recNew()
	rapid.Check(t, func(rt *rapid.T) {
		insts := []*compute.Instance{e.instance(), e.instance()}
		var vols []*volume.Volume
		for n := range 3 {
			v := e.volume()
			vols = append(vols, v)
			if i := rapid.IntRange(-1, 1).Draw(rt, fmt.Sprintf("volume %d attached to", n)); i >= 0 {
				e.attach(insts[i], v)
			}
		}
		for range rapid.IntRange(1, 4).Draw(rt, "drifts") {
			d := rapid.SampledFrom(recDrifts).Draw(rt, "drift")
			v := rapid.IntRange(0, 2).Draw(rt, "volume")
			i := rapid.IntRange(0, 1).Draw(rt, "instance")
			rt.Logf("drift: %s (volume %d, instance %d)", d.name, v, i)
			d.apply(e, insts, vols, v, i)
		}
		// Both instances are on the reconciler's host: its host pass finds
		// every finding of the full audit about an instance (but an
		// attachment without mapping of a volume no mapping or guest disk
		// names: the sweep's), and nothing the full audit does not find.
		full, err := r.Audit(ctxT(t))
		if err != nil {
			rt.Fatal(err)
		}
		host, err := r.AuditHost(ctxT(t))
		if err != nil {
			rt.Fatal(err)
		}
		named := func(volumeID string) bool {
			for _, v := range vols {
				if v.ID != volumeID {
					continue
				}
				if e.recMappingOf(insts, v) != nil {
					return true
				}
				for _, i := range insts {
					if e.recHasDisk(i.UUID, v.ID) {
						return true
					}
				}
			}
			return false
		}
		ids := func(fs []compute.Finding, aboutInstance bool) map[string]bool {
			out := map[string]bool{}
			for _, f := range fs {
				if aboutInstance && (f.InstanceUUID == "" || f.Kind == compute.FindingAttachmentNoMapping && !named(f.VolumeID)) {
					continue
				}
				out[f.ID()] = true
			}
			return out
		}
		fullIDs, hostIDs := ids(full, false), ids(host, false)
		for id := range ids(full, true) {
			if !hostIDs[id] {
				rt.Fatalf("the host pass missed %s\nfull %v\nhost %v", id, full, host)
			}
		}
		for id := range hostIDs {
			if !fullIDs[id] {
				rt.Fatalf("the host pass found %s, the full audit not\nfull %v\nhost %v", id, full, host)
			}
		}
		rep, err := r.RunOnce(ctxT(t))
		if err != nil || len(rep.Left) > 0 {
			rt.Fatalf("reconcile: %v; left %v; repairs %+v", err, rep.Left, rep.Repairs)
		}
		// After one pass every invariant holds: volume status derived from
		// its attachments, nothing attaching/detaching/reserved, every
		// attachment, mapping, index entry and guest disk backed by the
		// others.
		if vs := e.recViolations(); len(vs) > 0 {
			rt.Fatalf("after reconciling: %v\nrepairs %+v", vs, rep.Repairs)
		}
		// A second pass finds nothing and writes nothing.
		before := e.recRevision()
		again, err := r.RunOnce(ctxT(t))
		if err != nil || len(again.Findings) > 0 || e.recRevision() != before {
			rt.Fatalf("second pass: %v, found %v, revision %d -> %d", err, again.Findings, before, e.recRevision())
		}
		e.recForget()
	})
	e.requireHistoryOnRows()
	e.recRequireVolumeHistoryOnRows()
}

// recForget deletes every record (not the history), so the next check
// starts from an empty deployment and each audit stays as small as one
// check's records.
func (e *env) recForget() {
	e.t.Helper()
	ctx := context.Background()
	kinds := []struct {
		kind volattach.Kind
		rec  func(id string) volattach.Record
	}{
		{volattach.KindOperation, func(id string) volattach.Record { return &compute.Operation{ID: id} }},
		{volattach.KindMapping, func(id string) volattach.Record {
			v, i, _ := cutMappingID(id)
			return &compute.BlockDeviceMapping{VolumeID: v, InstanceUUID: i}
		}},
		{volattach.KindAttachment, func(id string) volattach.Record { return &volume.Attachment{ID: id} }},
		{volattach.KindVolume, func(id string) volattach.Record { return &volume.Volume{ID: id} }},
		{volattach.KindInstance, func(id string) volattach.Record { return &compute.Instance{UUID: id} }},
	}
	for _, k := range kinds {
		ids, err := e.raw.List(ctx, k.kind, "", "", 0)
		if err != nil {
			e.t.Fatal(err)
		}
		for _, id := range ids {
			rec := k.rec(id)
			if err := e.raw.Get(ctx, rec); err != nil {
				e.t.Fatal(err)
			}
			e.recPut(nil, rec)
		}
	}
}
