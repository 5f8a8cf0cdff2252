package iscsi_test

import (
	"context"
	"slices"
	"testing"

	"github.com/volattach/volattach/adapters/storage/iscsi"
	"github.com/volattach/volattach/volume"
)

// TestListExportsNamesOnlyThisPrefixsTargets: ListExports names the
// targets this backend made, not those of another prefix nor those another
// deployment's backend made under the same prefix (a reconciler removes
// listed exports it knows no volume of: with a shared tgtd, listing a
// twin's targets made each node delete the other's; the flaky
// adapters/node TestAttachToShutOffGuest).
func TestListExportsNamesOnlyThisPrefixsTargets(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	other := newFixture(t) // another backend sharing tgtd
	c := volume.Connector{Host: "compute-1", IP: "127.0.0.1"}
	ids := []string{newID(), newID()}
	slices.Sort(ids)
	for _, id := range ids {
		v := volume.Volume{ID: id, SizeBytes: mib}
		if err := f.b.CreateVolume(ctx, v); err != nil {
			t.Fatal(err)
		}
		if err := f.b.CreateExport(ctx, v, c); err != nil {
			t.Fatal(err)
		}
	}
	// A backend of another deployment sharing tgtd and the IQN prefix,
	// with a state directory of its own: its targets are not f's.
	cfg := f.cfg
	cfg.StateDir = t.TempDir()
	twin, err := iscsi.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	twinVol := volume.Volume{ID: newID(), SizeBytes: mib}
	if err := twin.CreateVolume(ctx, twinVol); err != nil {
		t.Fatal(err)
	}
	if err := twin.CreateExport(ctx, twinVol, c); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = twin.RemoveExport(context.Background(), twinVol) })
	foreign := volume.Volume{ID: newID(), SizeBytes: mib}
	if err := other.b.CreateVolume(ctx, foreign); err != nil {
		t.Fatal(err)
	}
	if err := other.b.CreateExport(ctx, foreign, c); err != nil {
		t.Fatal(err)
	}
	got, err := f.b.ListExports(ctx)
	if err != nil || !slices.Equal(got, ids) {
		t.Fatalf("ListExports = %v, %v; want %v", got, err, ids)
	}
	if err := f.b.RemoveExport(ctx, volume.Volume{ID: ids[0]}); err != nil {
		t.Fatal(err)
	}
	if got, err := f.b.ListExports(ctx); err != nil || !slices.Equal(got, ids[1:]) {
		t.Fatalf("after RemoveExport: ListExports = %v, %v; want %v", got, err, ids[1:])
	}
}
