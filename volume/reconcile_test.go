package volume_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/volume"
)

// listingBackend is the fake backend that can list its exports.
type listingBackend struct{ *fakeBackend }

func (b listingBackend) ListExports(context.Context) ([]string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Sorted(maps.Keys(b.exports)), nil
}

func newListingEnv(t *testing.T) *env {
	fake := newFakeBackend()
	return newEnv(t, listingBackend{fake}, fake)
}

// drift writes a volume's status behind the Service's back.
func (e *env) drift(id string, status volume.Status, attach volume.AttachStatus) {
	e.t.Helper()
	v := e.get(id)
	v.Status, v.AttachStatus = status, attach
	if _, err := e.store.Commit(ctxFor(e.t), volattach.Txn{Puts: []volattach.Record{v}}); err != nil {
		e.t.Fatal(err)
	}
}

func TestRecomputeStatus(t *testing.T) {
	tests := []struct {
		name       string
		setup      func(e *env) string
		changed    bool
		want       volume.Status
		wantAttach volume.AttachStatus
		lastEvent  string
	}{
		{"attaching with no attachment is unreserved", func(e *env) string {
			v := e.create(volume.VolumeSpec{})
			if err := e.svc.Reserve(ctxFor(e.t), v.ID); err != nil {
				e.t.Fatal(err)
			}
			return v.ID
		}, true, volume.StatusAvailable, volume.AttachDetached, string(volume.EventUnreserve)},
		{"detaching with its attachment attached rolls back", func(e *env) string {
			v, _ := e.attached(volume.VolumeSpec{}, instA)
			if err := e.svc.BeginDetaching(ctxFor(e.t), v.ID); err != nil {
				e.t.Fatal(err)
			}
			return v.ID
		}, true, volume.StatusInUse, volume.AttachAttached, string(volume.EventRollDetaching)},
		{"in-use with no attachment becomes available", func(e *env) string {
			v := e.create(volume.VolumeSpec{})
			e.drift(v.ID, volume.StatusInUse, volume.AttachAttached)
			return v.ID
		}, true, volume.StatusAvailable, volume.AttachDetached, string(volume.EventRecomputeStatus)},
		{"available with an attached attachment becomes in-use", func(e *env) string {
			v, _ := e.attached(volume.VolumeSpec{}, instA)
			e.drift(v.ID, volume.StatusAvailable, volume.AttachDetached)
			return v.ID
		}, true, volume.StatusInUse, volume.AttachAttached, string(volume.EventRecomputeStatus)},
		{"a consistent volume is not written", func(e *env) string {
			v, _ := e.attached(volume.VolumeSpec{}, instA)
			return v.ID
		}, false, volume.StatusInUse, volume.AttachAttached, string(volume.EventAttach)},
		{"a status outside the attach flow is left alone", func(e *env) string {
			v := e.create(volume.VolumeSpec{})
			e.drift(v.ID, volume.StatusMaintenance, volume.AttachAttached)
			return v.ID
		}, false, volume.StatusMaintenance, volume.AttachAttached, string(volume.EventCreateDone)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newFakeEnv(t)
			id := tt.setup(e)
			before := e.revision()
			changed, err := e.svc.RecomputeStatus(ctxFor(t), id)
			if err != nil || changed != tt.changed {
				t.Fatalf("RecomputeStatus = %v, %v; want %v", changed, err, tt.changed)
			}
			if !changed && e.revision() != before {
				t.Fatalf("no change, but revision %d -> %d", before, e.revision())
			}
			e.wantStatus(id, tt.want, tt.wantAttach)
			h := e.history(volattach.Key{Kind: volattach.KindVolume, ID: id})
			if last := h[len(h)-1].Event; last != tt.lastEvent {
				t.Fatalf("last volume event %s, want %s", last, tt.lastEvent)
			}
			e.checkHistory()
		})
	}
}

func TestRecomputeStatusOfMissingVolume(t *testing.T) {
	e := newFakeEnv(t)
	if _, err := e.svc.RecomputeStatus(ctxFor(t), "no-such-volume"); !errors.Is(err, volume.ErrVolumeNotFound) {
		t.Fatalf("got %v", err)
	}
}

func TestExportsListsBackendsThatCan(t *testing.T) {
	ctx := context.Background()
	e := newListingEnv(t)
	v := e.create(volume.VolumeSpec{})
	if _, err := e.svc.InitializeConnection(ctx, v.ID, hostConnector); err != nil {
		t.Fatal(err)
	}
	exports, listed, err := e.svc.Exports(ctx)
	if err != nil || !slices.Equal(listed, []string{"fake"}) || !slices.Equal(exports, []volume.Export{{Backend: "fake", VolumeID: v.ID}}) {
		t.Fatalf("Exports = %v, %v, %v", exports, listed, err)
	}
	plain := newFakeEnv(t)
	if exports, listed, err := plain.svc.Exports(ctx); err != nil || len(listed) != 0 || len(exports) != 0 {
		t.Fatalf("a backend that cannot list: Exports = %v, %v, %v", exports, listed, err)
	}
}

func TestRemoveStaleExport(t *testing.T) {
	ctx := context.Background()
	e := newListingEnv(t)
	// An export left by an attach that rolled back (terminate_connection
	// keeps the export, as upstream's does).
	stale := e.create(volume.VolumeSpec{})
	if _, err := e.svc.InitializeConnection(ctx, stale.ID, hostConnector); err != nil {
		t.Fatal(err)
	}
	used, _ := e.attached(volume.VolumeSpec{}, instA)
	reserved := e.create(volume.VolumeSpec{})
	if err := e.svc.Reserve(ctx, reserved.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.InitializeConnection(ctx, reserved.ID, hostConnector); err != nil {
		t.Fatal(err)
	}
	e.backend.mu.Lock()
	e.backend.exports["gone-volume"] = true
	e.backend.mu.Unlock()

	for _, id := range []string{used.ID, reserved.ID} {
		before := e.get(id).Revision()
		err := e.svc.RemoveStaleExport(ctx, volume.Export{Backend: "fake", VolumeID: id})
		var refused *volume.Error
		if !errors.Is(err, volume.ErrInvalidVolume) || !errors.As(err, &refused) || refused.Rule != volume.RuleExportUnused {
			t.Fatalf("removing the export of %s: %v; want InvalidVolume (%s)", id, err, volume.RuleExportUnused)
		}
		if !e.backend.exported(id) {
			t.Fatalf("the export of %s went although it may be in use", id)
		}
		if after := e.get(id).Revision(); after != before {
			t.Fatalf("a refused removal wrote the volume: revision %d -> %d", before, after)
		}
	}
	for _, id := range []string{stale.ID, "gone-volume"} {
		for range 2 { // idempotent
			if err := e.svc.RemoveStaleExport(ctx, volume.Export{Backend: "fake", VolumeID: id}); err != nil {
				t.Fatalf("removing the stale export of %s: %v", id, err)
			}
		}
		if e.backend.exported(id) {
			t.Fatalf("stale export of %s kept", id)
		}
	}
	if err := e.svc.RemoveStaleExport(ctx, volume.Export{Backend: "other", VolumeID: stale.ID}); !errors.Is(err, volume.ErrVolumeBackendAPIException) {
		t.Fatalf("unknown backend: %v", err)
	}
	e.checkHistory()
}
