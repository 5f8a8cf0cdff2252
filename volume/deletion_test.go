package volume_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"

	"github.com/volattach/volattach/volume"
)

// usage is the compute side's answer in these tests: the attachments its
// instances still use.
type usage struct {
	mu    sync.Mutex
	inUse map[string]bool
	err   error
	asked int
}

func (u *usage) InstanceUsesAttachment(_ context.Context, _, _, attachmentID string) (bool, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.asked++
	return u.inUse[attachmentID], u.err
}

func (u *usage) set(attachmentID string, uses bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.inUse[attachmentID] = uses
}

// TestAttachmentDeletionAllowed (V33, upstream bug 2004555,
// attachment_deletion_allowed): with a compute side to ask, a caller that
// is not the compute service may not remove, through os-detach,
// os-terminate_connection, os-force_detach or DELETE /attachments, an
// attachment whose instance still uses it, nor one it cannot name: 409
// ConflictNovaUsingAttachment with nothing written. The compute service
// (a context with the service token) may.
func TestAttachmentDeletionAllowed(t *testing.T) {
	user := func(t *testing.T) context.Context { return ctxFor(t) }
	service := func(t *testing.T) context.Context { return volume.WithServiceToken(ctxFor(t)) }
	legacy := func(e *env, _ *usage) ids { return inUse(e) }
	viaAttachments := func(e *env, _ *usage) ids {
		id := available(e)
		a, err := e.svc.AttachmentCreate(ctxFor(e.t), id.vol, instA, &hostConnector, "")
		if err != nil {
			e.t.Fatal(err)
		}
		if err := e.svc.AttachmentComplete(ctxFor(e.t), a.ID); err != nil {
			e.t.Fatal(err)
		}
		return ids{vol: id.vol, att: a.ID}
	}
	twoOnMultiattach := func(e *env, _ *usage) ids {
		id := inUseMulti(e)
		if err := e.svc.Reserve(ctxFor(e.t), id.vol); err != nil {
			e.t.Fatal(err)
		}
		b, err := e.svc.Attach(ctxFor(e.t), id.vol, instB, "compute-2", "/dev/vdb", volume.ModeRW)
		if err != nil {
			e.t.Fatal(err)
		}
		return ids{vol: id.vol, att: id.att, att2: b.ID}
	}
	detach := func(ctx context.Context, e *env, id ids) error { return e.svc.Detach(ctx, id.vol, id.att) }
	terminate := func(ctx context.Context, e *env, id ids) error {
		return e.svc.TerminateConnection(ctx, id.vol, hostConnector)
	}
	force := func(ctx context.Context, e *env, id ids) error {
		return e.svc.ForceDetach(ctx, admin, id.vol, id.att, &hostConnector)
	}
	del := func(ctx context.Context, e *env, id ids) error { return e.svc.AttachmentDelete(ctx, id.att) }
	cases := []struct {
		name    string
		setup   func(e *env, u *usage) ids
		ctx     func(t *testing.T) context.Context
		uses    bool // the compute side still uses id.att
		call    func(ctx context.Context, e *env, id ids) error
		refused bool
	}{
		{"user os-detach of a legacy attachment in use", legacy, user, true, detach, true},
		{"service os-detach of a legacy attachment in use", legacy, service, true, detach, false},
		{"user os-detach of a legacy attachment the compute side no longer uses", legacy, user, false, detach, false},
		{"user os-terminate_connection, one attachment in use", legacy, user, true, terminate, true},
		{"service os-terminate_connection, one attachment in use", legacy, service, true, terminate, false},
		{"admin (not the service) os-force_detach of an attachment in use", legacy, user, true, force, true},
		{"service os-force_detach of an attachment in use", legacy, service, true, force, false},
		{"user attachment_delete of a connected attachment in use", viaAttachments, user, true, del, true},
		{"service attachment_delete of a connected attachment in use", viaAttachments, service, true, del, false},
		{"user attachment_delete of a connected attachment no longer used", viaAttachments, user, false, del, false},
		{"user attachment_delete of a reservation (no connection)", func(e *env, _ *usage) ids {
			id := available(e)
			a, err := e.svc.AttachmentCreate(ctxFor(e.t), id.vol, instA, nil, "")
			if err != nil {
				e.t.Fatal(err)
			}
			return ids{vol: id.vol, att: a.ID}
		}, user, true, del, false},
		{"user os-terminate_connection with two attachments: cannot name one", twoOnMultiattach, user, false, terminate, true},
		{"service os-terminate_connection with two attachments", twoOnMultiattach, service, false, terminate, false},
		{"user os-detach of an unknown attachment id", legacy, user, false, func(ctx context.Context, e *env, id ids) error {
			return e.svc.Detach(ctx, id.vol, "0e0e0e0e-0000-4000-8000-000000000000")
		}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u := &usage{inUse: map[string]bool{}}
			fake := newFakeBackend()
			e := newEnv(t, fake, fake, volume.WithAttachmentUsage(u))
			id := tc.setup(e, u)
			u.set(id.att, tc.uses)
			before := e.revision()
			err := tc.call(tc.ctx(t), e, id)
			if !tc.refused {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var verr *volume.Error
			if !errors.As(err, &verr) || verr.Kind != volume.ErrConflictNovaUsingAttachment || verr.Rule != volume.RuleDeletionAllowed || volume.HTTPStatus(err) != http.StatusConflict {
				t.Fatalf("error %v; want ConflictNovaUsingAttachment (409) by %s", err, volume.RuleDeletionAllowed)
			}
			if after := e.revision(); after != before {
				t.Fatalf("refused call wrote to etcd: revision %d -> %d", before, after)
			}
		})
	}
}

// TestAttachmentDeletionComputeUnreachable: when the compute side cannot
// answer, a user's detach fails and changes nothing (upstream: nova's 503).
func TestAttachmentDeletionComputeUnreachable(t *testing.T) {
	u := &usage{inUse: map[string]bool{}, err: errors.New("compute API unreachable")}
	fake := newFakeBackend()
	e := newEnv(t, fake, fake, volume.WithAttachmentUsage(u))
	id := inUse(e)
	before := e.revision()
	if err := e.svc.Detach(ctxFor(t), id.vol, id.att); err == nil {
		t.Fatal("detach accepted although the compute side could not be asked")
	}
	if after := e.revision(); after != before {
		t.Fatalf("revision %d -> %d", before, after)
	}
	e.wantStatus(id.vol, volume.StatusInUse, volume.AttachAttached)
}

// TestAttachmentDeletionWithoutComputeSide: a Service with no compute side
// to ask has nobody to protect; the check is off.
func TestAttachmentDeletionWithoutComputeSide(t *testing.T) {
	e := newFakeEnv(t)
	id := inUse(e)
	if err := e.svc.Detach(ctxFor(t), id.vol, id.att); err != nil {
		t.Fatalf("Detach: %v", err)
	}
}
