package volume_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/volattach/volattach/volume"
)

// ids are what a rule case's setup made.
type ids struct {
	vol, att, att2 string
}

// ruleCase is one rule of REFERENCE section 3, accepted or refused.
type ruleCase struct {
	name  string
	hooks bool // use the backend with attach/detach hooks
	setup func(e *env) ids
	call  func(ctx context.Context, e *env, id ids) error
	// kind and code are the refusal expected; nil kind: accepted.
	kind *volume.ErrorKind
	code int
	// persists marks a failure upstream records (error_attaching, error
	// states); every other failure must leave the etcd revision unchanged.
	persists bool
	// noop marks an accepted call upstream answers without changing
	// anything: it too must leave the revision unchanged.
	noop  bool
	after func(e *env, id ids)
}

var admin = volume.Caller{Admin: true}

func available(e *env) ids { return ids{vol: e.create(volume.VolumeSpec{}).ID} }

func reservedVol(e *env) ids {
	id := available(e)
	if err := e.svc.Reserve(ctxFor(e.t), id.vol); err != nil {
		e.t.Fatal(err)
	}
	return id
}

func inUse(e *env) ids {
	v, a := e.attached(volume.VolumeSpec{}, instA)
	return ids{vol: v.ID, att: a.ID}
}

func inUseMulti(e *env) ids {
	v, a := e.attached(volume.VolumeSpec{Multiattach: true}, instA)
	return ids{vol: v.ID, att: a.ID}
}

func resetTo(status volume.Status) func(e *env) ids {
	return func(e *env) ids {
		id := available(e)
		if err := e.svc.ResetStatus(ctxFor(e.t), admin, id.vol, volume.ResetRequest{Status: status}); err != nil {
			e.t.Fatal(err)
		}
		return id
	}
}

func wantVol(status volume.Status, attach volume.AttachStatus) func(e *env, id ids) {
	return func(e *env, id ids) { e.wantStatus(id.vol, status, attach) }
}

func wantAttachment(status volume.AttachStatus, message bool) func(e *env, id ids) {
	return func(e *env, id ids) {
		as := e.attachments(id.vol)
		if len(as) != 1 || as[0].AttachStatus != status || (as[0].Message != "") != message {
			e.t.Fatalf("attachments %+v, want one in %s (message %v)", as, status, message)
		}
	}
}

func noAttachments(e *env, id ids) {
	if as := e.attachments(id.vol); len(as) != 0 {
		e.t.Fatalf("attachments left: %+v", as)
	}
}

func all(fs ...func(e *env, id ids)) func(e *env, id ids) {
	return func(e *env, id ids) {
		for _, f := range fs {
			f(e, id)
		}
	}
}

func legacyRules() []ruleCase {
	return []ruleCase{
		{name: "reserve available", setup: available,
			call:  func(ctx context.Context, e *env, id ids) error { return e.svc.Reserve(ctx, id.vol) },
			after: wantVol(volume.StatusAttaching, volume.AttachDetached)},
		{name: "reserve in-use multiattach", setup: inUseMulti,
			call:  func(ctx context.Context, e *env, id ids) error { return e.svc.Reserve(ctx, id.vol) },
			after: wantVol(volume.StatusAttaching, volume.AttachAttached)},
		{name: "reserve in-use refused", setup: inUse,
			call: func(ctx context.Context, e *env, id ids) error { return e.svc.Reserve(ctx, id.vol) },
			kind: volume.ErrInvalidVolume, code: http.StatusBadRequest},
		{name: "reserve attaching refused", setup: reservedVol,
			call: func(ctx context.Context, e *env, id ids) error { return e.svc.Reserve(ctx, id.vol) },
			kind: volume.ErrInvalidVolume, code: http.StatusBadRequest},
		{name: "reserve unknown volume", setup: func(e *env) ids { return ids{vol: "5d0c6e0e-0000-4000-8000-000000000000"} },
			call: func(ctx context.Context, e *env, id ids) error { return e.svc.Reserve(ctx, id.vol) },
			kind: volume.ErrVolumeNotFound, code: http.StatusNotFound},

		{name: "unreserve to available", setup: reservedVol,
			call:  func(ctx context.Context, e *env, id ids) error { return e.svc.Unreserve(ctx, id.vol) },
			after: wantVol(volume.StatusAvailable, volume.AttachDetached)},
		{name: "unreserve back to in-use", setup: func(e *env) ids {
			id := inUseMulti(e)
			if err := e.svc.Reserve(ctxFor(e.t), id.vol); err != nil {
				e.t.Fatal(err)
			}
			return id
		},
			call:  func(ctx context.Context, e *env, id ids) error { return e.svc.Unreserve(ctx, id.vol) },
			after: wantVol(volume.StatusInUse, volume.AttachAttached)},
		{name: "unreserve not attaching is a no-op", noop: true, setup: available,
			call:  func(ctx context.Context, e *env, id ids) error { return e.svc.Unreserve(ctx, id.vol) },
			after: wantVol(volume.StatusAvailable, volume.AttachDetached)},

		{name: "begin_detaching in-use", setup: inUse,
			call:  func(ctx context.Context, e *env, id ids) error { return e.svc.BeginDetaching(ctx, id.vol) },
			after: wantVol(volume.StatusDetaching, volume.AttachAttached)},
		{name: "begin_detaching available refused", setup: available,
			call: func(ctx context.Context, e *env, id ids) error { return e.svc.BeginDetaching(ctx, id.vol) },
			kind: volume.ErrInvalidVolume, code: http.StatusBadRequest},
		{name: "begin_detaching migrating is a no-op", noop: true, setup: func(e *env) ids {
			id := inUse(e)
			m := "migrating"
			if err := e.svc.ResetStatus(ctxFor(e.t), admin, id.vol, volume.ResetRequest{MigrationStatus: &m}); err != nil {
				e.t.Fatal(err)
			}
			return id
		},
			call:  func(ctx context.Context, e *env, id ids) error { return e.svc.BeginDetaching(ctx, id.vol) },
			after: wantVol(volume.StatusInUse, volume.AttachAttached)},

		{name: "roll_detaching", setup: func(e *env) ids {
			id := inUse(e)
			if err := e.svc.BeginDetaching(ctxFor(e.t), id.vol); err != nil {
				e.t.Fatal(err)
			}
			return id
		},
			call:  func(ctx context.Context, e *env, id ids) error { return e.svc.RollDetaching(ctx, id.vol) },
			after: wantVol(volume.StatusInUse, volume.AttachAttached)},
		{name: "roll_detaching not detaching is a no-op", noop: true, setup: inUse,
			call:  func(ctx context.Context, e *env, id ids) error { return e.svc.RollDetaching(ctx, id.vol) },
			after: wantVol(volume.StatusInUse, volume.AttachAttached)},

		{name: "initialize_connection", setup: reservedVol,
			call: func(ctx context.Context, e *env, id ids) error {
				info, err := e.svc.InitializeConnection(ctx, id.vol, hostConnector)
				if err == nil && info.AccessMode() != volume.ModeRW {
					e.t.Errorf("access_mode %s", info.AccessMode())
				}
				return err
			},
			after: all(wantVol(volume.StatusAttaching, volume.AttachDetached), func(e *env, id ids) {
				if !e.backend.exported(id.vol) {
					e.t.Error("volume not exported")
				}
			})},
		{name: "initialize_connection read-only volume says ro", setup: func(e *env) ids { return ids{vol: e.create(volume.VolumeSpec{ReadOnly: true}).ID} },
			call: func(ctx context.Context, e *env, id ids) error {
				info, err := e.svc.InitializeConnection(ctx, id.vol, hostConnector)
				if err == nil && info.AccessMode() != volume.ModeRO {
					e.t.Errorf("access_mode %s, want ro", info.AccessMode())
				}
				return err
			}},
		{name: "initialize_connection in maintenance refused", setup: resetTo(volume.StatusMaintenance),
			call: func(ctx context.Context, e *env, id ids) error {
				_, err := e.svc.InitializeConnection(ctx, id.vol, hostConnector)
				return err
			},
			kind: volume.ErrInvalidVolume, code: http.StatusBadRequest},
		{name: "initialize_connection backend error removes the export", setup: reservedVol,
			call: func(ctx context.Context, e *env, id ids) error {
				e.backend.fail("InitializeConnection", errors.New("target on fire"))
				_, err := e.svc.InitializeConnection(ctx, id.vol, hostConnector)
				return err
			},
			kind: volume.ErrVolumeBackendAPIException, code: http.StatusInternalServerError, persists: true,
			after: all(wantVol(volume.StatusAttaching, volume.AttachDetached), func(e *env, id ids) {
				if e.backend.exported(id.vol) || e.backend.callCount("RemoveExport") != 1 {
					e.t.Error("export left behind after a failed initialize_connection")
				}
			})},

		{name: "terminate_connection unreserves", setup: func(e *env) ids {
			id := reservedVol(e)
			if _, err := e.svc.InitializeConnection(ctxFor(e.t), id.vol, hostConnector); err != nil {
				e.t.Fatal(err)
			}
			return id
		},
			call: func(ctx context.Context, e *env, id ids) error {
				return e.svc.TerminateConnection(ctx, id.vol, hostConnector)
			},
			after: all(wantVol(volume.StatusAvailable, volume.AttachDetached), func(e *env, id ids) {
				if len(e.backend.connectedHosts(id.vol)) != 0 {
					e.t.Error("connection left")
				}
			})},
		{name: "terminate_connection backend error", setup: inUse,
			call: func(ctx context.Context, e *env, id ids) error {
				e.backend.fail("TerminateConnection", errors.New("tgtd gone"))
				return e.svc.TerminateConnection(ctx, id.vol, hostConnector)
			},
			kind: volume.ErrVolumeBackendAPIException, code: http.StatusInternalServerError, persists: true,
			after: wantVol(volume.StatusInUse, volume.AttachAttached)},

		{name: "attach reserved volume", setup: reservedVol,
			call: func(ctx context.Context, e *env, id ids) error {
				_, err := e.svc.Attach(ctx, id.vol, instA, "compute-1", "/dev/vdb", volume.ModeRW)
				return err
			},
			after: all(wantVol(volume.StatusInUse, volume.AttachAttached), wantAttachment(volume.AttachAttached, false))},
		{name: "attach step 2: being attached by different mode", setup: func(e *env) ids {
			id := inUseMulti(e) // attached_mode rw recorded
			if err := e.svc.Reserve(ctxFor(e.t), id.vol); err != nil {
				e.t.Fatal(err)
			}
			return id
		},
			call: func(ctx context.Context, e *env, id ids) error {
				_, err := e.svc.Attach(ctx, id.vol, instB, "compute-1", "/dev/vdc", volume.ModeRO)
				return err
			},
			kind: volume.ErrInvalidVolume, code: http.StatusBadRequest},
		{name: "attach step 4: already attached", setup: inUse,
			call: func(ctx context.Context, e *env, id ids) error {
				_, err := e.svc.Attach(ctx, id.vol, instB, "compute-2", "/dev/vdb", volume.ModeRW)
				return err
			},
			kind: volume.ErrInvalidVolume, code: http.StatusBadRequest},
		{name: "attach step 3: idempotent retry", setup: func(e *env) ids {
			id := inUseMulti(e)
			if err := e.svc.Reserve(ctxFor(e.t), id.vol); err != nil {
				e.t.Fatal(err)
			}
			return id
		},
			call: func(ctx context.Context, e *env, id ids) error {
				a, err := e.svc.Attach(ctx, id.vol, instA, "compute-1", "/dev/vdb", volume.ModeRW)
				if err == nil && a.ID != id.att {
					e.t.Errorf("retry returned attachment %s, want %s", a.ID, id.att)
				}
				return err
			},
			after: all(wantVol(volume.StatusInUse, volume.AttachAttached), wantAttachment(volume.AttachAttached, false))},
		{name: "attach step 0: instance not a UUID (schema, nothing written)", setup: reservedVol,
			call: func(ctx context.Context, e *env, id ids) error {
				_, err := e.svc.Attach(ctx, id.vol, "instance-1", "compute-1", "/dev/vdb", volume.ModeRW)
				return err
			},
			kind: volume.ErrInvalidUUID, code: http.StatusBadRequest,
			after: all(wantVol(volume.StatusAttaching, volume.AttachDetached), noAttachments)},
		{name: "attach step 1: read-only volume needs ro (API, nothing written)", setup: func(e *env) ids {
			id := ids{vol: e.create(volume.VolumeSpec{ReadOnly: true}).ID}
			if err := e.svc.Reserve(ctxFor(e.t), id.vol); err != nil {
				e.t.Fatal(err)
			}
			return id
		},
			call: func(ctx context.Context, e *env, id ids) error {
				_, err := e.svc.Attach(ctx, id.vol, instA, "compute-1", "/dev/vdb", volume.ModeRW)
				return err
			},
			kind: volume.ErrInvalidVolumeAttachMode, code: http.StatusBadRequest,
			after: all(wantVol(volume.StatusAttaching, volume.AttachDetached), noAttachments, func(e *env, id ids) {
				if _, err := e.svc.Attach(ctxFor(e.t), id.vol, instA, "compute-1", "/dev/vdb", volume.ModeRO); err != nil {
					e.t.Errorf("retry in ro refused: %v", err)
				}
			})},
		{name: "attach step 6: backend hook fails", hooks: true, setup: reservedVol,
			call: func(ctx context.Context, e *env, id ids) error {
				e.backend.fail("AttachVolume", errors.New("hook failed"))
				_, err := e.svc.Attach(ctx, id.vol, instA, "compute-1", "/dev/vdb", volume.ModeRW)
				return err
			},
			kind: volume.ErrVolumeBackendAPIException, code: http.StatusInternalServerError, persists: true,
			after: all(wantVol(volume.StatusAttaching, volume.AttachDetached), wantAttachment(volume.AttachErrorAttaching, true))},
		{name: "attach step 7 after the hook", hooks: true, setup: reservedVol,
			call: func(ctx context.Context, e *env, id ids) error {
				_, err := e.svc.Attach(ctx, id.vol, instA, "compute-1", "/dev/vdb", volume.ModeRW)
				return err
			},
			after: all(wantVol(volume.StatusInUse, volume.AttachAttached), wantAttachment(volume.AttachAttached, false))},
		{name: "attach in maintenance refused", setup: resetTo(volume.StatusMaintenance),
			call: func(ctx context.Context, e *env, id ids) error {
				_, err := e.svc.Attach(ctx, id.vol, instA, "compute-1", "/dev/vdb", volume.ModeRW)
				return err
			},
			kind: volume.ErrInvalidVolume, code: http.StatusBadRequest},

		{name: "detach to available", setup: inUse,
			call: func(ctx context.Context, e *env, id ids) error { return e.svc.Detach(ctx, id.vol, id.att) },
			after: all(wantVol(volume.StatusAvailable, volume.AttachDetached), noAttachments, func(e *env, id ids) {
				if e.backend.exported(id.vol) {
					e.t.Error("export left after detach")
				}
			})},
		{name: "detach without id, one attachment", setup: inUse,
			call:  func(ctx context.Context, e *env, id ids) error { return e.svc.Detach(ctx, id.vol, "") },
			after: all(wantVol(volume.StatusAvailable, volume.AttachDetached), noAttachments)},
		{name: "detach of a gone attachment settles the status", noop: true, setup: func(e *env) ids {
			id := inUse(e)
			if err := e.svc.BeginDetaching(ctxFor(e.t), id.vol); err != nil {
				e.t.Fatal(err)
			}
			if err := e.svc.Detach(ctxFor(e.t), id.vol, id.att); err != nil {
				e.t.Fatal(err)
			}
			return id
		},
			call:  func(ctx context.Context, e *env, id ids) error { return e.svc.Detach(ctx, id.vol, id.att) },
			after: wantVol(volume.StatusAvailable, volume.AttachDetached)},
		{name: "detach without id, two attachments", setup: func(e *env) ids {
			id := inUseMulti(e)
			ctx := ctxFor(e.t)
			if err := e.svc.Reserve(ctx, id.vol); err != nil {
				e.t.Fatal(err)
			}
			if _, err := e.svc.Attach(ctx, id.vol, instB, "compute-2", "/dev/vdb", volume.ModeRW); err != nil {
				e.t.Fatal(err)
			}
			return id
		},
			call: func(ctx context.Context, e *env, id ids) error { return e.svc.Detach(ctx, id.vol, "") },
			kind: volume.ErrInvalidVolume, code: http.StatusBadRequest},
		{name: "detach in maintenance refused", setup: func(e *env) ids {
			id := inUse(e)
			if err := e.svc.ResetStatus(ctxFor(e.t), admin, id.vol, volume.ResetRequest{Status: volume.StatusMaintenance}); err != nil {
				e.t.Fatal(err)
			}
			return id
		},
			call: func(ctx context.Context, e *env, id ids) error { return e.svc.Detach(ctx, id.vol, id.att) },
			kind: volume.ErrInvalidVolume, code: http.StatusBadRequest},
		{name: "detach hook fails: error_detaching", hooks: true, setup: inUse,
			call: func(ctx context.Context, e *env, id ids) error {
				e.backend.fail("DetachVolume", errors.New("hook failed"))
				return e.svc.Detach(ctx, id.vol, id.att)
			},
			kind: volume.ErrVolumeBackendAPIException, code: http.StatusInternalServerError, persists: true,
			after: all(wantVol(volume.StatusInUse, volume.AttachAttached), wantAttachment(volume.AttachErrorDetaching, false))},

		{name: "force_detach needs an admin", setup: inUse,
			call: func(ctx context.Context, e *env, id ids) error {
				return e.svc.ForceDetach(ctx, volume.Caller{}, id.vol, id.att, &hostConnector)
			},
			kind: volume.ErrPolicyNotAuthorized, code: http.StatusForbidden},
		{name: "force_detach by an admin", setup: inUse,
			call: func(ctx context.Context, e *env, id ids) error {
				return e.svc.ForceDetach(ctx, admin, id.vol, id.att, &hostConnector)
			},
			after: all(wantVol(volume.StatusAvailable, volume.AttachDetached), noAttachments, func(e *env, id ids) {
				if len(e.backend.connectedHosts(id.vol)) != 0 || e.backend.exported(id.vol) {
					e.t.Error("connection or export left after force_detach")
				}
			})},
		{name: "force_detach: a failing detach hook is a 500, the attachment kept in error_detaching", hooks: true, setup: inUse,
			call: func(ctx context.Context, e *env, id ids) error {
				e.backend.fail("DetachVolume", errors.New("hook failed"))
				return e.svc.ForceDetach(ctx, admin, id.vol, id.att, nil)
			},
			kind: volume.ErrVolumeBackendAPIException, code: http.StatusInternalServerError, persists: true,
			after: wantAttachment(volume.AttachErrorDetaching, false)},
		{name: "force_detach terminate failure changes nothing", setup: inUse,
			call: func(ctx context.Context, e *env, id ids) error {
				e.backend.fail("TerminateConnection", errors.New("tgtd gone"))
				return e.svc.ForceDetach(ctx, admin, id.vol, id.att, &hostConnector)
			},
			kind: volume.ErrVolumeBackendAPIException, code: http.StatusInternalServerError, persists: true,
			after: all(wantVol(volume.StatusInUse, volume.AttachAttached), wantAttachment(volume.AttachAttached, false))},

		{name: "reset_status needs an admin", setup: resetTo(volume.StatusError),
			call: func(ctx context.Context, e *env, id ids) error {
				return e.svc.ResetStatus(ctx, volume.Caller{}, id.vol, volume.ResetRequest{Status: volume.StatusAvailable})
			},
			kind: volume.ErrPolicyNotAuthorized, code: http.StatusForbidden},
		{name: "reset_status by an admin", setup: resetTo(volume.StatusError),
			call: func(ctx context.Context, e *env, id ids) error {
				return e.svc.ResetStatus(ctx, admin, id.vol, volume.ResetRequest{Status: volume.StatusAvailable})
			},
			after: wantVol(volume.StatusAvailable, volume.AttachDetached)},
		{name: "reset_status to deleting refused", setup: available,
			call: func(ctx context.Context, e *env, id ids) error {
				return e.svc.ResetStatus(ctx, admin, id.vol, volume.ResetRequest{Status: volume.StatusDeleting})
			},
			kind: volume.ErrInvalidInput, code: http.StatusBadRequest},
		{name: "reset_status to in-use without attachments refused", setup: available,
			call: func(ctx context.Context, e *env, id ids) error {
				return e.svc.ResetStatus(ctx, admin, id.vol, volume.ResetRequest{Status: volume.StatusInUse})
			},
			kind: volume.ErrInvalidInput, code: http.StatusBadRequest},
		{name: "reset_status unknown status refused", setup: available,
			call: func(ctx context.Context, e *env, id ids) error {
				return e.svc.ResetStatus(ctx, admin, id.vol, volume.ResetRequest{Status: "exploded"})
			},
			kind: volume.ErrInvalidInput, code: http.StatusBadRequest},
		{name: "reset_status attach_status attaching refused", setup: available,
			call: func(ctx context.Context, e *env, id ids) error {
				return e.svc.ResetStatus(ctx, admin, id.vol, volume.ResetRequest{AttachStatus: volume.AttachAttaching})
			},
			kind: volume.ErrInvalidInput, code: http.StatusBadRequest},
		{name: "reset_status detached releases the attachments", setup: inUse,
			call: func(ctx context.Context, e *env, id ids) error {
				return e.svc.ResetStatus(ctx, admin, id.vol, volume.ResetRequest{Status: volume.StatusAvailable, AttachStatus: volume.AttachDetached})
			},
			after: all(wantVol(volume.StatusAvailable, volume.AttachDetached), noAttachments, func(e *env, id ids) {
				if e.backend.exported(id.vol) {
					e.t.Error("export left after reset to detached")
				}
			})},
	}
}

func lifecycleRules() []ruleCase {
	return []ruleCase{
		{name: "create backend failure: error", setup: func(e *env) ids { return ids{} },
			call: func(ctx context.Context, e *env, id ids) error {
				e.backend.fail("CreateVolume", errors.New("no space"))
				v, err := e.svc.CreateVolume(ctx, volume.VolumeSpec{ID: "c3f9b8a2-1111-4222-8333-444455556666", SizeBytes: 1 << 20})
				if v == nil || v.Status != volume.StatusError {
					e.t.Errorf("volume %+v, want one in error", v)
				}
				return err
			},
			kind: volume.ErrVolumeBackendAPIException, code: http.StatusInternalServerError, persists: true},
		{name: "create with an id in use", setup: available,
			call: func(ctx context.Context, e *env, id ids) error {
				_, err := e.svc.CreateVolume(ctx, volume.VolumeSpec{ID: id.vol, SizeBytes: 1 << 20})
				return err
			},
			kind: volume.ErrResourceConflict, code: http.StatusConflict},
		{name: "create without a size", setup: func(e *env) ids { return ids{} },
			call: func(ctx context.Context, e *env, id ids) error {
				_, err := e.svc.CreateVolume(ctx, volume.VolumeSpec{})
				return err
			},
			kind: volume.ErrInvalidInput, code: http.StatusBadRequest},
		{name: "delete available", setup: available,
			call: func(ctx context.Context, e *env, id ids) error { return e.svc.DeleteVolume(ctx, id.vol) },
			after: func(e *env, id ids) {
				if _, err := e.svc.GetVolume(ctxFor(e.t), id.vol); !errors.Is(err, volume.ErrVolumeNotFound) {
					e.t.Errorf("deleted volume still readable: %v", err)
				}
			}},
		{name: "delete in-use refused", setup: inUse,
			call: func(ctx context.Context, e *env, id ids) error { return e.svc.DeleteVolume(ctx, id.vol) },
			kind: volume.ErrInvalidVolume, code: http.StatusBadRequest},
		{name: "delete reserved refused", setup: func(e *env) ids {
			id := available(e)
			if _, err := e.svc.AttachmentCreate(ctxFor(e.t), id.vol, instA, nil, ""); err != nil {
				e.t.Fatal(err)
			}
			return id
		},
			call: func(ctx context.Context, e *env, id ids) error { return e.svc.DeleteVolume(ctx, id.vol) },
			kind: volume.ErrInvalidVolume, code: http.StatusBadRequest},
		{name: "delete destroys an error_attaching attachment", hooks: true, setup: func(e *env) ids {
			id := reservedVol(e)
			e.backend.fail("AttachVolume", errors.New("hook failed"))
			if _, err := e.svc.Attach(ctxFor(e.t), id.vol, instA, "compute-1", "/dev/vdb", ""); !errors.Is(err, volume.ErrVolumeBackendAPIException) {
				e.t.Fatal(err)
			}
			e.backend.fail("AttachVolume", nil)
			as := e.attachments(id.vol)
			if err := e.svc.Unreserve(ctxFor(e.t), id.vol); err != nil {
				e.t.Fatal(err)
			}
			return ids{vol: id.vol, att: as[0].ID}
		},
			call: func(ctx context.Context, e *env, id ids) error { return e.svc.DeleteVolume(ctx, id.vol) },
			after: func(e *env, id ids) {
				if _, err := e.svc.GetAttachment(ctxFor(e.t), id.att); !errors.Is(err, volume.ErrVolumeAttachmentNotFound) {
					e.t.Errorf("error_attaching attachment survived its volume: %v", err)
				}
			}},
		{name: "delete backend failure: error_deleting", setup: available,
			call: func(ctx context.Context, e *env, id ids) error {
				e.backend.fail("DeleteVolume", errors.New("busy"))
				return e.svc.DeleteVolume(ctx, id.vol)
			},
			kind: volume.ErrVolumeBackendAPIException, code: http.StatusInternalServerError, persists: true,
			after: wantVol(volume.StatusErrorDeleting, volume.AttachDetached)},
	}
}

func attachmentsRules() []ruleCase {
	create := func(ctx context.Context, e *env, id ids) error {
		_, err := e.svc.AttachmentCreate(ctx, id.vol, instB, nil, "")
		return err
	}
	reservedAtt := func(e *env) ids {
		id := available(e)
		a, err := e.svc.AttachmentCreate(ctxFor(e.t), id.vol, instA, nil, "")
		if err != nil {
			e.t.Fatal(err)
		}
		id.att = a.ID
		return id
	}
	return []ruleCase{
		{name: "attachment_create on available", setup: available, call: create,
			after: all(wantVol(volume.StatusReserved, volume.AttachDetached), wantAttachment(volume.AttachReserved, false))},
		{name: "attachment_create on downloading", setup: resetTo(volume.StatusDownloading), call: create,
			after: wantVol(volume.StatusReserved, volume.AttachDetached)},
		{name: "attachment_create on error refused", setup: resetTo(volume.StatusError), call: create,
			kind: volume.ErrInvalidVolume, code: http.StatusBadRequest},
		{name: "attachment_create on in-use refused", setup: inUse, call: create,
			kind: volume.ErrInvalidVolume, code: http.StatusBadRequest},
		{name: "attachment_create on in-use multiattach", setup: inUseMulti, call: create,
			after: wantVol(volume.StatusReserved, volume.AttachAttached)},
		{name: "attachment_create same instance (live migration)", setup: inUse,
			call: func(ctx context.Context, e *env, id ids) error {
				_, err := e.svc.AttachmentCreate(ctx, id.vol, instA, nil, "")
				return err
			},
			after: func(e *env, id ids) {
				e.wantStatus(id.vol, volume.StatusInUse, volume.AttachAttached)
				if n := len(e.attachments(id.vol)); n != 2 {
					e.t.Errorf("%d attachments, want 2", n)
				}
			}},
		{name: "attachment_create with connector", setup: available,
			call: func(ctx context.Context, e *env, id ids) error {
				a, err := e.svc.AttachmentCreate(ctx, id.vol, instA, &hostConnector, "")
				if err == nil && (a.ConnectionInfo == nil || a.AttachStatus != volume.AttachAttaching) {
					e.t.Errorf("attachment %+v", a)
				}
				return err
			},
			after: all(wantVol(volume.StatusAttaching, volume.AttachAttaching), wantAttachment(volume.AttachAttaching, false))},

		{name: "attachment_update", setup: reservedAtt,
			call: func(ctx context.Context, e *env, id ids) error {
				a, err := e.svc.AttachmentUpdate(ctx, id.att, hostConnector)
				if err == nil && (a.ConnectionInfo == nil || a.ConnectionInfo.AccessMode() != volume.ModeRW || a.AttachedHost != "compute-1") {
					e.t.Errorf("attachment %+v", a)
				}
				return err
			},
			after: all(wantVol(volume.StatusAttaching, volume.AttachAttaching), wantAttachment(volume.AttachAttaching, false))},
		{name: "attachment_update on an error volume: 409", setup: func(e *env) ids {
			id := reservedAtt(e)
			if err := e.svc.ResetStatus(ctxFor(e.t), admin, id.vol, volume.ResetRequest{Status: volume.StatusError}); err != nil {
				e.t.Fatal(err)
			}
			return id
		},
			call: func(ctx context.Context, e *env, id ids) error {
				_, err := e.svc.AttachmentUpdate(ctx, id.att, hostConnector)
				return err
			},
			kind: volume.ErrResourceConflict, code: http.StatusConflict},
		{name: "attachment_update duplicate connector: 409", setup: func(e *env) ids {
			id := reservedAtt(e)
			ctx := ctxFor(e.t)
			if _, err := e.svc.AttachmentUpdate(ctx, id.att, hostConnector); err != nil {
				e.t.Fatal(err)
			}
			if err := e.svc.AttachmentComplete(ctx, id.att); err != nil {
				e.t.Fatal(err)
			}
			a2, err := e.svc.AttachmentCreate(ctx, id.vol, instA, nil, "") // same instance: allowed
			if err != nil {
				e.t.Fatal(err)
			}
			id.att2 = a2.ID
			return id
		},
			call: func(ctx context.Context, e *env, id ids) error {
				_, err := e.svc.AttachmentUpdate(ctx, id.att2, connectorFor("compute-2"))
				return err
			},
			kind: volume.ErrResourceConflict, code: http.StatusConflict,
			after: func(e *env, id ids) {
				if hosts := e.backend.connectedHosts(id.vol); len(hosts) != 1 || hosts[0] != "compute-1" {
					e.t.Errorf("connected hosts %v", hosts)
				}
			}},
		{name: "attachment_update unknown attachment: 404", setup: available,
			call: func(ctx context.Context, e *env, id ids) error {
				_, err := e.svc.AttachmentUpdate(ctx, "a6b1d7c0-0000-4000-8000-000000000000", hostConnector)
				return err
			},
			kind: volume.ErrVolumeAttachmentNotFound, code: http.StatusNotFound},
		{name: "attachment_update backend failure: export removed", setup: reservedAtt,
			call: func(ctx context.Context, e *env, id ids) error {
				e.backend.fail("InitializeConnection", errors.New("no target"))
				_, err := e.svc.AttachmentUpdate(ctx, id.att, hostConnector)
				return err
			},
			kind: volume.ErrVolumeBackendAPIException, code: http.StatusInternalServerError, persists: true,
			after: all(wantVol(volume.StatusReserved, volume.AttachDetached), wantAttachment(volume.AttachReserved, false), func(e *env, id ids) {
				if e.backend.exported(id.vol) {
					e.t.Error("export left behind")
				}
			})},

		{name: "attachment_complete", setup: func(e *env) ids {
			id := reservedAtt(e)
			if _, err := e.svc.AttachmentUpdate(ctxFor(e.t), id.att, hostConnector); err != nil {
				e.t.Fatal(err)
			}
			return id
		},
			call:  func(ctx context.Context, e *env, id ids) error { return e.svc.AttachmentComplete(ctx, id.att) },
			after: all(wantVol(volume.StatusInUse, volume.AttachAttached), wantAttachment(volume.AttachAttached, false))},
		{name: "attachment_complete without connector (shelved_offloaded)", setup: reservedAtt,
			call:  func(ctx context.Context, e *env, id ids) error { return e.svc.AttachmentComplete(ctx, id.att) },
			after: all(wantVol(volume.StatusInUse, volume.AttachAttached), wantAttachment(volume.AttachAttached, false))},

		{name: "attachment_delete", setup: func(e *env) ids {
			id := reservedAtt(e)
			ctx := ctxFor(e.t)
			if _, err := e.svc.AttachmentUpdate(ctx, id.att, hostConnector); err != nil {
				e.t.Fatal(err)
			}
			if err := e.svc.AttachmentComplete(ctx, id.att); err != nil {
				e.t.Fatal(err)
			}
			return id
		},
			call: func(ctx context.Context, e *env, id ids) error { return e.svc.AttachmentDelete(ctx, id.att) },
			after: all(wantVol(volume.StatusAvailable, volume.AttachDetached), noAttachments, func(e *env, id ids) {
				if e.backend.exported(id.vol) || len(e.backend.connectedHosts(id.vol)) != 0 {
					e.t.Error("export or connection left after attachment_delete")
				}
			})},
		{name: "attachment_delete of a reservation", setup: reservedAtt,
			call:  func(ctx context.Context, e *env, id ids) error { return e.svc.AttachmentDelete(ctx, id.att) },
			after: all(wantVol(volume.StatusAvailable, volume.AttachDetached), noAttachments)},
		{name: "attachment_delete unknown: 404", setup: available,
			call: func(ctx context.Context, e *env, id ids) error {
				return e.svc.AttachmentDelete(ctx, "a6b1d7c0-0000-4000-8000-000000000000")
			},
			kind: volume.ErrVolumeAttachmentNotFound, code: http.StatusNotFound},
		{name: "attachment_delete terminate failure changes nothing", setup: func(e *env) ids {
			id := reservedAtt(e)
			if _, err := e.svc.AttachmentUpdate(ctxFor(e.t), id.att, hostConnector); err != nil {
				e.t.Fatal(err)
			}
			return id
		},
			call: func(ctx context.Context, e *env, id ids) error {
				e.backend.fail("TerminateConnection", errors.New("tgtd gone"))
				return e.svc.AttachmentDelete(ctx, id.att)
			},
			kind: volume.ErrVolumeBackendAPIException, code: http.StatusInternalServerError, persists: true,
			after: all(wantVol(volume.StatusAttaching, volume.AttachAttaching), wantAttachment(volume.AttachAttaching, false))},
	}
}

// TestRules runs every rule of REFERENCE section 3 against the real
// embedded etcd: accepted cases reach the status upstream reaches, refused
// ones return the upstream error kind and HTTP status and leave the etcd
// revision unchanged (nothing persisted, not even a lock).
func TestRules(t *testing.T) {
	groups := map[string][]ruleCase{"legacy": legacyRules(), "lifecycle": lifecycleRules(), "attachments": attachmentsRules(), "upstream": upstreamRules()}
	for _, group := range []string{"legacy", "lifecycle", "attachments", "upstream"} {
		for _, tc := range groups[group] {
			t.Run(group+"/"+tc.name, func(t *testing.T) {
				fake := newFakeBackend()
				var b volume.Backend = fake
				if tc.hooks {
					b = &hookedBackend{fakeBackend: fake}
				}
				e := newEnv(t, b, fake)
				id := tc.setup(e)
				ctx := ctxFor(t)
				before := e.revision()
				err := tc.call(ctx, e, id)
				switch {
				case tc.kind == nil && err != nil:
					t.Fatalf("refused: %v", err)
				case tc.kind == nil && tc.noop:
					if after := e.revision(); after != before {
						t.Fatalf("no-op wrote to etcd: revision %d -> %d", before, after)
					}
				case tc.kind != nil && err == nil:
					t.Fatalf("accepted, want %s", tc.kind.Name())
				case tc.kind != nil:
					if !errors.Is(err, tc.kind) {
						t.Fatalf("error %v is not %s", err, tc.kind.Name())
					}
					if got := volume.HTTPStatus(err); got != tc.code {
						t.Fatalf("HTTP status %d, want %d (%v)", got, tc.code, err)
					}
					if after := e.revision(); !tc.persists && after != before {
						t.Fatalf("refused call wrote to etcd: revision %d -> %d", before, after)
					}
				}
				if tc.after != nil {
					tc.after(e, id)
				}
				e.checkHistory()
			})
		}
	}
}
