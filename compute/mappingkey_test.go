package compute_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/adapters/etcd/etcdtest"
	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/volume"
)

// idGen draws ids rich in the characters a key encoding could trip on.
func idGen() *rapid.Generator[string] {
	return rapid.StringOfN(rapid.SampledFrom([]rune{'a', 'b', '1', ':', '%', '2', '5', '3', 'A', '-', 'é'}), 1, 12, -1)
}

// For any two (volume, instance) pairs, the mapping id gives the pair back,
// and one volume's prefix matches a mapping id exactly when the id is of
// that volume.
func TestMappingIDIsUnambiguous(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		v, i := idGen().Draw(t, "volume"), idGen().Draw(t, "instance")
		w := idGen().Draw(t, "other volume")
		id := compute.MappingID(v, i)
		gv, gi, ok := compute.ParseMappingID(id)
		if !ok || gv != v || gi != i {
			t.Fatalf("ParseMappingID(%q) = %q %q %v; want %q %q", id, gv, gi, ok, v, i)
		}
		if got := strings.HasPrefix(id, compute.MappingPrefix(w)); got != (w == v) {
			t.Fatalf("MappingPrefix(%q) prefixes %q (mapping of %q): %v", w, id, v, got)
		}
	})
}

// Ids without ':' or '%' keep the key they had before the escape: records
// written by the built-in backends' ids are read where they are.
func TestMappingIDKeepsPlainIDs(t *testing.T) {
	for _, v := range []string{"3b9fdb6c-200e-494d-aa71-f47c70e87d7e", "vol-1", "data.1_x"} {
		if got, want := compute.MappingID(v, "i"), v+":i"; got != want {
			t.Errorf("MappingID(%q) = %q; want %q", v, got, want)
		}
	}
}

// anyIDVolume stores an available volume whose id the Service would not
// create today (volume.ValidateVolumeID), as an older version or a remote
// volume API may hold: the compute side's keys must be right for any id.
func (e *env) anyIDVolume(id string) *volume.Volume {
	e.t.Helper()
	v := e.memVolume("", false)
	stored := &volume.Volume{ID: v.ID}
	if err := e.raw.Get(context.Background(), stored); err != nil {
		e.t.Fatal(err)
	}
	stored.ID = id
	stored.SetRevision(0)
	e.recPut([]volattach.Record{stored})
	return stored
}

// H1: a volume whose id holds ':' is attached normally; the audit finds
// nothing wrong with it and the reconciler leaves it alone.
func TestColonVolumeIDAttachmentLeftAlone(t *testing.T) {
	e := newMemEnv(t, newChapBackend())
	i := e.instance()
	v := e.anyIDVolume("data:1")
	e.attach(i, v)
	e.requireAttached(i, v, "/dev/vdb")
	r := e.recNew()
	fs, err := r.Audit(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		t.Errorf("finding on a healthy attachment: %s", f)
	}
	e.recRunOnce(r)
	e.requireAttached(i, v, "/dev/vdb")
	if !e.recHasDisk(i.UUID, v.ID) {
		t.Fatalf("the reconciler removed the disk of %q from the guest", v.ID)
	}
}

// H1: volume "data" is not held by the mapping of volume "data:1".
func TestColonVolumeIDDoesNotHoldAnother(t *testing.T) {
	e := newMemEnv(t, newChapBackend())
	i1, i2 := e.instance(), e.instance()
	e.attach(i1, e.anyIDVolume("data:1"))
	v := e.anyIDVolume("data")
	if _, err := e.api.AttachVolume(ctxT(t), compute.AttachRequest{InstanceUUID: i2.UUID, VolumeID: v.ID}); err != nil {
		t.Fatalf("attach of available volume %q refused: %v", v.ID, err)
	}
	e.requireAttached(i2, v, "/dev/vdb")
}

// A mapping an older writer stored under "<volume>:<instance>" unescaped
// (a volume id holding ':') is found by the audit, judged by nothing else
// until moved, and moved to its key by the reconciler, unchanged.
func TestLegacyMappingKeyIsMoved(t *testing.T) {
	e := newMemEnv(t, newChapBackend())
	i := e.instance()
	v := e.anyIDVolume("data:1")
	e.attach(i, v)
	m := e.mapping(i.UUID, v.ID)
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	// Move it by hand to where the older writer put it.
	cli := etcdtest.Client(t)
	legacy := e.raw.Prefix() + string(volattach.KindMapping) + "/" + v.ID + ":" + i.UUID
	if _, err := cli.Put(context.Background(), legacy, string(raw)); err != nil {
		t.Fatal(err)
	}
	e.recPut(nil, m)
	r := e.recNew()
	e.recRequireFound(r, compute.FindingMappingLegacyKey)
	e.recRunOnce(r)
	got := e.mapping(i.UUID, v.ID)
	if got == nil || got.UUID != m.UUID || got.AttachmentID != m.AttachmentID || got.DeviceName != m.DeviceName {
		t.Fatalf("after the reconcile the mapping is %+v; want %+v at its key", got, m)
	}
	if resp, err := cli.Get(context.Background(), legacy); err != nil || len(resp.Kvs) != 0 {
		t.Fatalf("the legacy key is still there: %v %v", resp, err)
	}
	e.requireAttached(i, v, "/dev/vdb")
	if !e.recHasDisk(i.UUID, v.ID) {
		t.Fatal("the disk left the guest")
	}
}
