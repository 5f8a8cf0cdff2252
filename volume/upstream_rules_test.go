package volume_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/volattach/volattach/volume"
)

// upstreamRules are the cases of the fidelity review (rules V*, A*, R*
// against upstream cinder master) that once disagreed: each states
// upstream's answer, run by TestRules like every other rule.
func upstreamRules() []ruleCase {
	attach := func(inst, mode string) func(ctx context.Context, e *env, id ids) error {
		return func(ctx context.Context, e *env, id ids) error {
			_, err := e.svc.Attach(ctx, id.vol, inst, "compute-1", "/dev/vdb", mode)
			return err
		}
	}
	readonlyMultiInUse := func(e *env) ids {
		v := e.create(volume.VolumeSpec{ReadOnly: true, Multiattach: true})
		ctx := ctxFor(e.t)
		if err := e.svc.Reserve(ctx, v.ID); err != nil {
			e.t.Fatal(err)
		}
		a, err := e.svc.Attach(ctx, v.ID, instA, "compute-1", "/dev/vdb", volume.ModeRO)
		if err != nil {
			e.t.Fatal(err)
		}
		return ids{vol: v.ID, att: a.ID}
	}
	migrating := func(setup func(e *env) ids) func(e *env) ids {
		return func(e *env) ids {
			id := setup(e)
			m := "migrating"
			if err := e.svc.ResetStatus(ctxFor(e.t), admin, id.vol, volume.ResetRequest{MigrationStatus: &m}); err != nil {
				e.t.Fatal(err)
			}
			return id
		}
	}
	// connectedViaAttachments is a volume in-use through the attachments
	// API: instA's attachment connected on compute-1 and completed.
	connectedViaAttachments := func(e *env) ids {
		id := available(e)
		ctx := ctxFor(e.t)
		a, err := e.svc.AttachmentCreate(ctx, id.vol, instA, &hostConnector, "")
		if err != nil {
			e.t.Fatal(err)
		}
		if err := e.svc.AttachmentComplete(ctx, a.ID); err != nil {
			e.t.Fatal(err)
		}
		id.att = a.ID
		return id
	}
	return []ruleCase{
		// A5: live migration: attachment_create with a connector for an
		// instance attached on another host connects the new attachment.
		{name: "A5 attachment_create with a connector for an attached instance (live migration)", setup: connectedViaAttachments,
			call: func(ctx context.Context, e *env, id ids) error {
				b, err := e.svc.AttachmentCreate(ctx, id.vol, instA, ptr(connectorFor("compute-2")), "")
				if err == nil && (b.AttachStatus != volume.AttachAttaching || b.ConnectionInfo == nil || b.AttachedHost != "compute-2") {
					e.t.Errorf("new attachment %+v, want attaching on compute-2 with connection_info", b)
				}
				return err
			},
			after: all(wantVol(volume.StatusAttaching, volume.AttachAttaching), func(e *env, id ids) {
				if hosts := e.backend.connectedHosts(id.vol); len(hosts) != 2 {
					e.t.Errorf("connected hosts %v, want the source and the destination", hosts)
				}
			})},
		// A7: the duplicate-connector check counts the updated attachment.
		{name: "A7 attachment_update of a connected attachment beside a reservation: 409", setup: func(e *env) ids {
			id := connectedViaAttachments(e)
			if _, err := e.svc.AttachmentCreate(ctxFor(e.t), id.vol, instA, nil, ""); err != nil {
				e.t.Fatal(err)
			}
			return id
		},
			call: func(ctx context.Context, e *env, id ids) error {
				_, err := e.svc.AttachmentUpdate(ctx, id.att, hostConnector)
				return err
			},
			kind: volume.ErrResourceConflict, code: http.StatusConflict},
		// A10: after an update the volume's attach_status is attaching,
		// even with another attachment attached.
		{name: "A10 attachment_update beside an attached attachment: attaching/attaching", setup: func(e *env) ids {
			v := e.create(volume.VolumeSpec{Multiattach: true})
			ctx := ctxFor(e.t)
			a, err := e.svc.AttachmentCreate(ctx, v.ID, instA, &hostConnector, "")
			if err != nil {
				e.t.Fatal(err)
			}
			if err := e.svc.AttachmentComplete(ctx, a.ID); err != nil {
				e.t.Fatal(err)
			}
			b, err := e.svc.AttachmentCreate(ctx, v.ID, instB, nil, "")
			if err != nil {
				e.t.Fatal(err)
			}
			return ids{vol: v.ID, att: a.ID, att2: b.ID}
		},
			call: func(ctx context.Context, e *env, id ids) error {
				_, err := e.svc.AttachmentUpdate(ctx, id.att2, connectorFor("compute-2"))
				return err
			},
			after: wantVol(volume.StatusAttaching, volume.AttachAttaching)},
		// A12: os-complete has no precondition.
		{name: "A12 complete of an error_attaching attachment", hooks: true, setup: func(e *env) ids {
			id := reservedVol(e)
			e.backend.fail("AttachVolume", errors.New("hook failed"))
			if _, err := e.svc.Attach(ctxFor(e.t), id.vol, instA, "compute-1", "/dev/vdb", ""); !errors.Is(err, volume.ErrVolumeBackendAPIException) {
				e.t.Fatal(err)
			}
			id.att = e.attachments(id.vol)[0].ID
			return id
		},
			call:  func(ctx context.Context, e *env, id ids) error { return e.svc.AttachmentComplete(ctx, id.att) },
			after: all(wantVol(volume.StatusInUse, volume.AttachAttached), wantAttachment(volume.AttachAttached, true))},
		// V14 (review L4): the instance id is checked by upstream's request
		// schema, so a refused attach writes nothing, however often.
		{name: "V14 non-UUID instance, 20 times: nothing recorded", setup: reservedVol,
			call: func(ctx context.Context, e *env, id ids) error {
				for i := 0; i < 20; i++ {
					if _, err := e.svc.Attach(ctx, id.vol, "not-a-uuid", "", "/dev/vdb", volume.ModeRW); !errors.Is(err, volume.ErrInvalidUUID) {
						return err
					}
				}
				_, err := e.svc.Attach(ctx, id.vol, "not-a-uuid", "", "/dev/vdb", volume.ModeRW)
				return err
			},
			kind: volume.ErrInvalidUUID, code: http.StatusBadRequest,
			after: all(noAttachments, func(e *env, id ids) {
				if n := len(e.get(id.vol).AttachmentIDs); n != 0 {
					e.t.Errorf("volume lists %d attachment ids", n)
				}
			})},
		// L4: the one failure still recorded (the backend's attach hook) is
		// bounded: a retry replaces its earlier error_attaching record.
		{name: "L4 failed hook attaches of one instance leave one error_attaching record", hooks: true, setup: reservedVol,
			call: func(ctx context.Context, e *env, id ids) error {
				e.backend.fail("AttachVolume", errors.New("hook failed"))
				var err error
				for i := 0; i < 5; i++ {
					_, err = e.svc.Attach(ctx, id.vol, instA, "compute-1", "/dev/vdb", volume.ModeRW)
				}
				return err
			},
			kind: volume.ErrVolumeBackendAPIException, code: http.StatusInternalServerError, persists: true,
			after: all(wantAttachment(volume.AttachErrorAttaching, true), func(e *env, id ids) {
				e.backend.fail("AttachVolume", nil)
				if _, err := e.svc.Attach(ctxFor(e.t), id.vol, instA, "compute-1", "/dev/vdb", volume.ModeRW); err != nil {
					e.t.Fatalf("attach after the hook recovered: %v", err)
				}
				wantAttachment(volume.AttachAttached, false)(e, id)
			})},
		// V13: the read-only check is upstream's API's, before the
		// manager's mode-mismatch check and before anything is written.
		{name: "V13 read-only, attaching with recorded ro, asked rw: InvalidVolumeAttachMode", setup: func(e *env) ids {
			id := readonlyMultiInUse(e)
			if err := e.svc.Reserve(ctxFor(e.t), id.vol); err != nil {
				e.t.Fatal(err)
			}
			return id
		},
			call: attach(instB, volume.ModeRW),
			kind: volume.ErrInvalidVolumeAttachMode, code: http.StatusBadRequest},
		{name: "V13 read-only, instance already attached, asked rw: refused", setup: readonlyMultiInUse,
			call: attach(instA, volume.ModeRW),
			kind: volume.ErrInvalidVolumeAttachMode, code: http.StatusBadRequest},
		// V17: the retry of an attach that succeeded returns its attachment
		// before the "already attached" refusal (LP#1681543).
		{name: "V17 retry on an in-use volume returns the attachment", setup: inUse, noop: true,
			call: func(ctx context.Context, e *env, id ids) error {
				a, err := e.svc.Attach(ctx, id.vol, instA, "compute-1", "/dev/vdb", volume.ModeRW)
				if err == nil && a.ID != id.att {
					e.t.Errorf("retry returned attachment %s, want %s", a.ID, id.att)
				}
				return err
			},
			after: all(wantVol(volume.StatusInUse, volume.AttachAttached), wantAttachment(volume.AttachAttached, false))},
		{name: "V17 another instance on an in-use volume is still refused", setup: inUse,
			call: attach(instB, volume.ModeRW),
			kind: volume.ErrInvalidVolume, code: http.StatusBadRequest},
		// V4: begin_detaching on a migrating volume is a no-op whatever
		// its status.
		{name: "V4 begin_detaching available + migrating is a no-op", setup: migrating(available), noop: true,
			call:  func(ctx context.Context, e *env, id ids) error { return e.svc.BeginDetaching(ctx, id.vol) },
			after: wantVol(volume.StatusAvailable, volume.AttachDetached)},
		{name: "V4 begin_detaching attaching + migrating is a no-op", setup: migrating(reservedVol), noop: true,
			call:  func(ctx context.Context, e *env, id ids) error { return e.svc.BeginDetaching(ctx, id.vol) },
			after: wantVol(volume.StatusAttaching, volume.AttachDetached)},
		// V8: access_mode is attached_mode, else ro when read-only, else
		// rw; the connector's mode is not read.
		{name: "V8 connector mode ro on a writable volume: access_mode rw", setup: reservedVol,
			call: func(ctx context.Context, e *env, id ids) error {
				c := hostConnector
				c.Mode = volume.ModeRO
				info, err := e.svc.InitializeConnection(ctx, id.vol, c)
				if err == nil && info.AccessMode() != volume.ModeRW {
					e.t.Errorf("access_mode %s, want rw", info.AccessMode())
				}
				return err
			}},
		{name: "V8 recorded attached_mode wins", setup: func(e *env) ids {
			id := inUseMulti(e) // attached_mode rw
			if err := e.svc.Reserve(ctxFor(e.t), id.vol); err != nil {
				e.t.Fatal(err)
			}
			return id
		},
			call: func(ctx context.Context, e *env, id ids) error {
				c := connectorFor("compute-2")
				c.Mode = volume.ModeRO
				info, err := e.svc.InitializeConnection(ctx, id.vol, c)
				if err == nil && info.AccessMode() != volume.ModeRW {
					e.t.Errorf("access_mode %s, want the recorded rw", info.AccessMode())
				}
				return err
			}},
		// V27: a remove_export failure in os-detach is a 500 that leaves
		// the attachment as it was, so a retry works.
		{name: "V27 detach remove_export failure: 500, attachment untouched", setup: inUse,
			call: func(ctx context.Context, e *env, id ids) error {
				e.backend.fail("RemoveExport", errors.New("target busy"))
				return e.svc.Detach(ctx, id.vol, id.att)
			},
			kind: volume.ErrVolumeBackendAPIException, code: http.StatusInternalServerError, persists: true, // the lock only
			after: all(wantVol(volume.StatusInUse, volume.AttachAttached), wantAttachment(volume.AttachAttached, false), func(e *env, id ids) {
				e.backend.fail("RemoveExport", nil)
				if err := e.svc.Detach(ctxFor(e.t), id.vol, id.att); err != nil {
					e.t.Fatalf("retry: %v", err)
				}
				e.wantStatus(id.vol, volume.StatusAvailable, volume.AttachDetached)
			})},
		// V32: inside force_detach too: 500, attachment kept.
		{name: "V32 force_detach remove_export failure: 500, attachment kept", setup: inUse,
			call: func(ctx context.Context, e *env, id ids) error {
				e.backend.fail("RemoveExport", errors.New("target busy"))
				return e.svc.ForceDetach(ctx, admin, id.vol, id.att, &hostConnector)
			},
			kind: volume.ErrVolumeBackendAPIException, code: http.StatusInternalServerError, persists: true,
			after: all(wantVol(volume.StatusInUse, volume.AttachAttached), wantAttachment(volume.AttachAttached, false))},
		// V28: every detach drops attached_mode, so the next attach of a
		// multiattach volume may choose its mode.
		{name: "V28 detach drops attached_mode while another attachment remains", setup: func(e *env) ids {
			id := inUseMulti(e) // instA rw
			ctx := ctxFor(e.t)
			if err := e.svc.Reserve(ctx, id.vol); err != nil {
				e.t.Fatal(err)
			}
			b, err := e.svc.Attach(ctx, id.vol, instB, "compute-1", "/dev/vdc", volume.ModeRW)
			if err != nil {
				e.t.Fatal(err)
			}
			if err := e.svc.Detach(ctx, id.vol, id.att); err != nil {
				e.t.Fatal(err)
			}
			if err := e.svc.Reserve(ctx, id.vol); err != nil {
				e.t.Fatal(err)
			}
			return ids{vol: id.vol, att: b.ID}
		},
			call:  attach(instC, volume.ModeRO),
			after: wantVol(volume.StatusInUse, volume.AttachAttached)},
		// R5: migration_status is one of upstream's six (400 otherwise),
		// validated before the policy check.
		{name: "R5 reset migration_status bogus: 400", setup: available,
			call: func(ctx context.Context, e *env, id ids) error {
				m := "bogus"
				return e.svc.ResetStatus(ctx, admin, id.vol, volume.ResetRequest{MigrationStatus: &m})
			},
			kind: volume.ErrInvalidInput, code: http.StatusBadRequest},
		{name: "R5 reset migration_status bogus by a non-admin: 400 before 403", setup: available,
			call: func(ctx context.Context, e *env, id ids) error {
				m := "bogus"
				return e.svc.ResetStatus(ctx, volume.Caller{}, id.vol, volume.ResetRequest{MigrationStatus: &m})
			},
			kind: volume.ErrInvalidInput, code: http.StatusBadRequest},
		{name: "R5 reset migration_status Starting (any case)", setup: available,
			call: func(ctx context.Context, e *env, id ids) error {
				m := "Starting"
				return e.svc.ResetStatus(ctx, admin, id.vol, volume.ResetRequest{MigrationStatus: &m})
			},
			after: func(e *env, id ids) {
				if got := e.get(id.vol).MigrationStatus; got != "starting" {
					e.t.Errorf("migration_status %q", got)
				}
			}},
		// R8: attach_status detached runs volume_detached per attachment,
		// each recomputing the status.
		{name: "R8 reset attach_status detached: available", setup: inUse,
			call: func(ctx context.Context, e *env, id ids) error {
				return e.svc.ResetStatus(ctx, admin, id.vol, volume.ResetRequest{AttachStatus: volume.AttachDetached})
			},
			after: all(wantVol(volume.StatusAvailable, volume.AttachDetached), noAttachments)},
		{name: "R8 reset status error + attach_status detached: available", setup: inUse,
			call: func(ctx context.Context, e *env, id ids) error {
				return e.svc.ResetStatus(ctx, admin, id.vol, volume.ResetRequest{Status: volume.StatusError, AttachStatus: volume.AttachDetached})
			},
			after: wantVol(volume.StatusAvailable, volume.AttachDetached)},
		{name: "R8 reset uploading + detached with two attachments: available", setup: func(e *env) ids {
			id := inUseMulti(e)
			ctx := ctxFor(e.t)
			if err := e.svc.Reserve(ctx, id.vol); err != nil {
				e.t.Fatal(err)
			}
			if _, err := e.svc.Attach(ctx, id.vol, instB, "compute-1", "/dev/vdc", volume.ModeRW); err != nil {
				e.t.Fatal(err)
			}
			return id
		},
			call: func(ctx context.Context, e *env, id ids) error {
				return e.svc.ResetStatus(ctx, admin, id.vol, volume.ResetRequest{Status: volume.StatusUploading, AttachStatus: volume.AttachDetached})
			},
			after: all(wantVol(volume.StatusAvailable, volume.AttachDetached), noAttachments)},
		{name: "R8 reset detached while migrating holds the status", setup: inUse,
			call: func(ctx context.Context, e *env, id ids) error {
				m := "migrating"
				return e.svc.ResetStatus(ctx, admin, id.vol, volume.ResetRequest{AttachStatus: volume.AttachDetached, MigrationStatus: &m})
			},
			after: wantVol(volume.StatusInUse, volume.AttachDetached)},
	}
}

// revokingBackend can revoke every host of a volume at once (upstream's
// drivers given connector None).
type revokingBackend struct{ *fakeBackend }

func (b *revokingBackend) TerminateAllConnections(ctx context.Context, v volume.Volume) error {
	if err := b.enter("TerminateAllConnections"); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.conns, v.ID)
	return nil
}

// TestForceDetachAlwaysTerminates (V31): os-force_detach terminates the
// connection whatever it was given: a legacy attachment records no
// connector, and a backend that can revoke every host is asked to; a
// failure there is a 500 that changes nothing.
func TestForceDetachAlwaysTerminates(t *testing.T) {
	fake := newFakeBackend()
	e := newEnv(t, &revokingBackend{fake}, fake)
	ctx := ctxFor(t)
	v, a := e.attached(volume.VolumeSpec{}, instA)
	if got := e.backend.connectedHosts(v.ID); len(got) != 1 {
		t.Fatalf("connected hosts %v before the forced detach", got)
	}
	fake.fail("TerminateAllConnections", errors.New("array offline"))
	if err := e.svc.ForceDetach(ctx, admin, v.ID, a.ID, nil); !errors.Is(err, volume.ErrVolumeBackendAPIException) {
		t.Fatalf("ForceDetach with a failing revoke: %v", err)
	}
	e.wantStatus(v.ID, volume.StatusInUse, volume.AttachAttached)
	wantAttachment(volume.AttachAttached, false)(e, ids{vol: v.ID})
	fake.fail("TerminateAllConnections", nil)
	if err := e.svc.ForceDetach(ctx, admin, v.ID, a.ID, nil); err != nil {
		t.Fatalf("ForceDetach: %v", err)
	}
	if n := fake.callCount("TerminateAllConnections"); n != 2 {
		t.Errorf("TerminateAllConnections called %d times, want 2", n)
	}
	if got := fake.connectedHosts(v.ID); len(got) != 0 {
		t.Errorf("hosts still connected after force_detach: %v", got)
	}
	e.wantStatus(v.ID, volume.StatusAvailable, volume.AttachDetached)
}

func ptr[T any](v T) *T { return &v }
