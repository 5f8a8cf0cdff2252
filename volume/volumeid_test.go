package volume_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/adapters/storage"
	"github.com/volattach/volattach/adapters/storage/file"
	"github.com/volattach/volattach/volume"
)

// badVolumeIDs are ids no built-in backend can hold: each must be refused
// by CreateVolume before anything is written.
var badVolumeIDs = []string{
	"vol:1",                  // ':' separates compound store keys
	"vol 1",                  // space
	"völ",                    // outside ASCII
	strings.Repeat("a", 200), // longer than MaxVolumeIDLen
	"-x",                     // must start with a letter or digit
	"..x\u202e",              // bidi override
	".",
	"a/b",
	"a\nb",
	strings.Repeat("b", 3<<20),
}

// TestCreateVolumeRefusesIDsNoBackendHolds (review M4): a volume id the
// backend cannot hold is InvalidInput (400) at the door: no commit, no
// record, and the message quotes a bounded prefix of the id.
func TestCreateVolumeRefusesIDsNoBackendHolds(t *testing.T) {
	fb, err := file.New(file.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, fb, nil)
	ctx := ctxFor(t)
	for _, id := range badVolumeIDs {
		before := e.counted.commits.Load()
		_, err := e.svc.CreateVolume(ctx, volume.VolumeSpec{ID: id, SizeBytes: 1 << 20})
		var verr *volume.Error
		if !errors.As(err, &verr) || verr.Kind != volume.ErrInvalidInput || verr.Rule != volume.RuleVolumeIDValid {
			t.Errorf("CreateVolume(id %.40q): %v; want InvalidInput by %s", id, err, volume.RuleVolumeIDValid)
			continue
		}
		if volume.HTTPStatus(err) != http.StatusBadRequest || len(err.Error()) > 300 {
			t.Errorf("CreateVolume(id %.40q): status %d, message of %d bytes", id, volume.HTTPStatus(err), len(err.Error()))
		}
		if n := e.counted.commits.Load() - before; n != 0 {
			t.Errorf("CreateVolume(id %.40q) committed %d times", id, n)
		}
		if _, gerr := e.svc.GetVolume(ctx, id); !errors.Is(gerr, volume.ErrVolumeNotFound) {
			t.Errorf("GetVolume(id %.40q) after the refusal: %v", id, gerr)
		}
	}
	for _, id := range []string{"data-1", "6edad723-c62d-40d4-a29e-d9ac6a3247ee", "v.0_x", strings.Repeat("c", volume.MaxVolumeIDLen)} {
		if err := volume.ValidateVolumeID(id); err != nil {
			t.Errorf("ValidateVolumeID(%q) = %v", id, err)
		}
	}
}

// TestVolumeIDRuleNoWiderThanBackends: every id the Service accepts, every
// built-in backend accepts (adapters/storage ValidateVolumeID is their
// common rule), so no recorded volume is one its backend cannot hold.
func TestVolumeIDRuleNoWiderThanBackends(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		id := rapid.OneOf(
			rapid.String(),
			rapid.StringMatching(`[A-Za-z0-9._:\- /]{0,140}`),
			rapid.StringOf(rapid.RuneFrom([]rune("a0.-_:/ \u202e\u00e9"))),
		).Draw(t, "id")
		if volume.ValidateVolumeID(id) == nil && storage.ValidateVolumeID(id) != nil {
			t.Fatalf("the Service accepts volume id %q, which the backends refuse: %v", id, storage.ValidateVolumeID(id))
		}
	})
}

// TestDeleteVolumeWithStoredBadID (review M4): a record whose id the
// Service no longer creates (stored before the rule) is still deletable,
// although the real file backend refuses the id.
func TestDeleteVolumeWithStoredBadID(t *testing.T) {
	fb, err := file.New(file.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, fb, nil)
	ctx := ctxFor(t)
	const id = "vol:1"
	if _, err := e.store.Commit(ctx, volattach.Txn{Puts: []volattach.Record{&volume.Volume{
		ID: id, SizeBytes: 1 << 20, Status: volume.StatusError, AttachStatus: volume.AttachDetached, Backend: fb.Name(),
	}}}); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.DeleteVolume(ctx, id); err != nil {
		t.Fatalf("DeleteVolume(%q): %v", id, err)
	}
	if v, err := e.svc.GetVolume(ctx, id); !errors.Is(err, volume.ErrVolumeNotFound) {
		t.Fatalf("after DeleteVolume(%q): %+v, %v; want VolumeNotFound", id, v, err)
	}
}

// TestHostileIDsTyped (review L3, volume half): a 3 MiB or otherwise
// impossible volume or attachment id is a typed 404, answered without a
// write, and the error does not echo the id in full.
func TestHostileIDsTyped(t *testing.T) {
	e := newFakeEnv(t)
	v := e.create(volume.VolumeSpec{})
	huge := strings.Repeat("b", 3<<20)
	calls := map[string]func() error{
		"GetVolume huge": func() error { _, err := e.svc.GetVolume(ctxFor(t), huge); return err },
		"Reserve huge":   func() error { return e.svc.Reserve(ctxFor(t), huge) },
		"Attach huge": func() error {
			_, err := e.svc.Attach(ctxFor(t), huge, instA, "compute-1", "/dev/vdb", volume.ModeRW)
			return err
		},
		"Detach huge":                 func() error { return e.svc.Detach(ctxFor(t), huge, "") },
		"DeleteVolume huge":           func() error { return e.svc.DeleteVolume(ctxFor(t), huge) },
		"GetVolume traversal":         func() error { _, err := e.svc.GetVolume(ctxFor(t), "../../etc/passwd"); return err },
		"GetVolume empty":             func() error { _, err := e.svc.GetVolume(ctxFor(t), ""); return err },
		"AttachmentComplete huge":     func() error { return e.svc.AttachmentComplete(ctxFor(t), huge) },
		"AttachmentDelete huge":       func() error { return e.svc.AttachmentDelete(ctxFor(t), huge) },
		"GetAttachment control chars": func() error { _, err := e.svc.GetAttachment(ctxFor(t), "a\x1b[2Jb"); return err },
		"Detach unknown attachment of a real volume, huge id": func() error {
			return e.svc.Detach(ctxFor(t), v.ID, huge)
		},
	}
	for name, call := range calls {
		before := e.revision()
		err := call()
		after := e.revision()
		if name == "Detach unknown attachment of a real volume, huge id" {
			// upstream detach_volume: an unknown attachment is an idempotent retry.
			if err != nil || after != before {
				t.Errorf("%s: %v, revision %d->%d", name, err, before, after)
			}
			continue
		}
		if !errors.Is(err, volume.ErrNotFound) || volume.HTTPStatus(err) != http.StatusNotFound {
			t.Errorf("%s: %v; want a typed 404", name, err)
		} else if len(err.Error()) > 300 || strings.Contains(err.Error(), "\x1b") {
			t.Errorf("%s: the error echoes the id (%d bytes): %.120q", name, len(err.Error()), err.Error())
		}
		if after != before {
			t.Errorf("%s wrote to etcd: revision %d->%d", name, before, after)
		}
	}
}
