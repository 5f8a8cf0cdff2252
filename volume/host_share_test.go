package volume_test

import (
	"slices"
	"testing"

	"github.com/volattach/volattach/volume"
)

// sameHostPair attaches a new multiattach volume to instA and instB on
// compute-1 through the legacy flow (the compute side's order) and returns
// the volume and instA's attachment.
func sameHostPair(e *env) (*volume.Volume, *volume.Attachment) {
	e.t.Helper()
	v, a := e.attached(volume.VolumeSpec{Size: 1, Multiattach: true}, instA)
	ctx := ctxFor(e.t)
	if err := e.svc.Reserve(ctx, v.ID); err != nil {
		e.t.Fatalf("Reserve: %v", err)
	}
	if _, err := e.svc.InitializeConnection(ctx, v.ID, hostConnector); err != nil {
		e.t.Fatalf("InitializeConnection: %v", err)
	}
	if _, err := e.svc.Attach(ctx, v.ID, instB, "compute-1", "/dev/vdc", volume.ModeRW); err != nil {
		e.t.Fatalf("Attach: %v", err)
	}
	return v, a
}

// wantHostConnected fails unless compute-1 still holds its connection.
func (e *env) wantHostConnected(id string, why string) {
	e.t.Helper()
	if hosts := e.backend.connectedHosts(id); !slices.Contains(hosts, "compute-1") {
		e.t.Fatalf("%s, but the backend revoked compute-1's connection (connected hosts now %v; TerminateConnection calls %d)",
			why, hosts, e.backend.callCount("TerminateConnection"))
	}
}

// TestMultiattachSameHostDetachKeepsConnection (review H2): the compute
// side's detach of one of two instances on one host (begin_detaching,
// terminate_connection with the host's connector, detach) leaves the host's
// connection, which the other instance uses; the second detach terminates
// it (upstream cinder lvm _is_multiattach_to_host).
func TestMultiattachSameHostDetachKeepsConnection(t *testing.T) {
	e := newFakeEnv(t)
	ctx := ctxFor(t)
	v, a1 := sameHostPair(e)
	detach := func(a *volume.Attachment) {
		t.Helper()
		if err := e.svc.BeginDetaching(ctx, v.ID); err != nil {
			t.Fatalf("BeginDetaching: %v", err)
		}
		if err := e.svc.TerminateConnection(ctx, v.ID, hostConnector); err != nil {
			t.Fatalf("TerminateConnection: %v", err)
		}
		if err := e.svc.Detach(ctx, v.ID, a.ID); err != nil {
			t.Fatalf("Detach: %v", err)
		}
	}
	detach(a1)
	e.wantStatus(v.ID, volume.StatusInUse, volume.AttachAttached)
	e.wantHostConnected(v.ID, "instance "+instB+" is still attached on compute-1")
	if n := e.backend.callCount("TerminateConnection"); n != 0 {
		t.Fatalf("backend TerminateConnection called %d times while another attachment on the host remains", n)
	}
	atts := e.attachments(v.ID)
	if len(atts) != 1 {
		t.Fatalf("%d attachments left, want instB's", len(atts))
	}
	detach(atts[0])
	e.wantStatus(v.ID, volume.StatusAvailable, volume.AttachDetached)
	if hosts := e.backend.connectedHosts(v.ID); len(hosts) != 0 {
		t.Fatalf("the last detach on compute-1 left connections %v", hosts)
	}
	e.checkHistory()
}

// TestMultiattachSameHostRollbackKeepsConnection: a third instance's attach
// on the same host that rolls back (terminate_connection of an attaching
// volume) keeps the connection the two attached instances use. Upstream
// counts more than one attached attachment here and would revoke it.
func TestMultiattachSameHostRollbackKeepsConnection(t *testing.T) {
	e := newFakeEnv(t)
	ctx := ctxFor(t)
	v, _ := e.attached(volume.VolumeSpec{Size: 1, Multiattach: true}, instA)
	if err := e.svc.Reserve(ctx, v.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.InitializeConnection(ctx, v.ID, hostConnector); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.TerminateConnection(ctx, v.ID, hostConnector); err != nil {
		t.Fatal(err)
	}
	e.wantStatus(v.ID, volume.StatusInUse, volume.AttachAttached)
	e.wantHostConnected(v.ID, "instance "+instA+" is still attached on compute-1 after another instance's attach rolled back")
	if !e.backend.exported(v.ID) {
		t.Fatal("the rollback removed the export instA uses")
	}
}

// TestMultiattachOtherHostDetachTerminates: the skip is per host; a
// detach on compute-2 terminates compute-2's connection while compute-1's
// attachment remains.
func TestMultiattachOtherHostDetachTerminates(t *testing.T) {
	e := newFakeEnv(t)
	ctx := ctxFor(t)
	v, _ := e.attached(volume.VolumeSpec{Size: 1, Multiattach: true}, instA)
	other := connectorFor("compute-2")
	if err := e.svc.Reserve(ctx, v.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.InitializeConnection(ctx, v.ID, other); err != nil {
		t.Fatal(err)
	}
	b, err := e.svc.Attach(ctx, v.ID, instB, "compute-2", "/dev/vdb", volume.ModeRW)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.BeginDetaching(ctx, v.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.TerminateConnection(ctx, v.ID, other); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Detach(ctx, v.ID, b.ID); err != nil {
		t.Fatal(err)
	}
	if hosts := e.backend.connectedHosts(v.ID); !slices.Equal(hosts, []string{"compute-1"}) {
		t.Fatalf("connected hosts after compute-2's detach: %v, want [compute-1]", hosts)
	}
}

// TestMultiattachSameHostAttachmentDeleteKeepsConnection: the attachments
// API's delete of one of two same-host attachments leaves the host's
// connection; deleting the last one terminates it.
func TestMultiattachSameHostAttachmentDeleteKeepsConnection(t *testing.T) {
	e := newFakeEnv(t)
	ctx := ctxFor(t)
	v := e.create(volume.VolumeSpec{Size: 1, Multiattach: true})
	var ids []string
	for _, inst := range []string{instA, instB} {
		a, err := e.svc.AttachmentCreate(ctx, v.ID, inst, &hostConnector, "")
		if err != nil {
			t.Fatalf("AttachmentCreate(%s): %v", inst, err)
		}
		if err := e.svc.AttachmentComplete(ctx, a.ID); err != nil {
			t.Fatalf("AttachmentComplete(%s): %v", inst, err)
		}
		ids = append(ids, a.ID)
	}
	if err := e.svc.AttachmentDelete(ctx, ids[0]); err != nil {
		t.Fatalf("AttachmentDelete: %v", err)
	}
	e.wantHostConnected(v.ID, "instance "+instB+"'s attachment on compute-1 remains")
	if err := e.svc.AttachmentDelete(ctx, ids[1]); err != nil {
		t.Fatalf("AttachmentDelete: %v", err)
	}
	if hosts := e.backend.connectedHosts(v.ID); len(hosts) != 0 {
		t.Fatalf("deleting the last attachment on compute-1 left connections %v", hosts)
	}
	e.wantStatus(v.ID, volume.StatusAvailable, volume.AttachDetached)
}
