package compute_test

import (
	"slices"
	"testing"

	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/compute/fake"
	"github.com/volattach/volattach/volume"
)

// attachShared attaches the multiattach volume v to i (microversion 2.60).
func (e *env) attachShared(i *compute.Instance, v *volume.Volume) *compute.VolumeAttachment {
	e.t.Helper()
	va, err := e.api.AttachVolume(ctxT(e.t), compute.AttachRequest{InstanceUUID: i.UUID, VolumeID: v.ID, SupportsMultiattach: true})
	if err != nil {
		e.t.Fatalf("attach %s to %s: %v", v.ID, i.UUID, err)
	}
	return va
}

// requireConnected fails unless v is still connected on the host.
func (e *env) requireConnected(v *volume.Volume, why string) {
	e.t.Helper()
	if !slices.Contains(e.driver.Connected(), v.ID) {
		e.t.Fatalf("%s, but volume %s was disconnected on the host (connected: %v)", why, v.ID, e.driver.Connected())
	}
}

// TestMultiattachSameHostDetachKeepsHostConnection (review H2, fidelity
// C18): two instances on one host share a multiattach volume; detaching
// one leaves the host connection the other uses (upstream libvirt
// _should_disconnect_target), and detaching the second disconnects it.
// Both disks are marked shareable (C19).
func TestMultiattachSameHostDetachKeepsHostConnection(t *testing.T) {
	e := newEnv(t)
	a, b, v := e.instance(), e.instance(), e.volume(multiattach)
	e.attachShared(a, v)
	vb := e.attachShared(b, v)
	for _, inst := range []*compute.Instance{a, b} {
		if m := e.mapping(inst.UUID, v.ID); m == nil || m.ConnectionInfo == nil || !m.ConnectionInfo.Multiattach {
			t.Fatalf("mapping of %s on %s: connection_info not marked multiattach: %+v", v.ID, inst.UUID, m)
		}
	}
	if err := e.api.DetachVolume(ctxT(t), compute.DetachRequest{InstanceUUID: a.UUID, VolumeID: v.ID}); err != nil {
		t.Fatalf("detach from %s: %v", a.UUID, err)
	}
	e.requireConnected(v, "instance "+b.UUID+" on the same host still has the disk")
	e.requireAttached(b, v, vb.Device)
	if err := e.api.DetachVolume(ctxT(t), compute.DetachRequest{InstanceUUID: b.UUID, VolumeID: v.ID}); err != nil {
		t.Fatalf("detach from %s: %v", b.UUID, err)
	}
	e.requireDetached(b, v)
	e.requireHistoryOnRows()
}

// TestMultiattachSameHostFailedAttachKeepsHostConnection: a third
// instance's attach of the shared volume that fails at the guest is undone
// without disconnecting the host connection the attached instance uses.
func TestMultiattachSameHostFailedAttachKeepsHostConnection(t *testing.T) {
	for _, step := range []string{fake.StepAttachGuest, fake.StepAttach} {
		t.Run(step, func(t *testing.T) {
			e := newEnv(t)
			a, c, v := e.instance(), e.instance(), e.volume(multiattach)
			va := e.attachShared(a, v)
			e.faults.FailOnce(step, nil)
			if _, err := e.api.AttachVolume(ctxT(t), compute.AttachRequest{InstanceUUID: c.UUID, VolumeID: v.ID, SupportsMultiattach: true}); err == nil {
				t.Fatalf("attach to %s with %s failing succeeded", c.UUID, step)
			}
			e.requireConnected(v, "instance "+a.UUID+" on the same host still has the disk after another attach rolled back")
			e.requireAttached(a, v, va.Device)
		})
	}
}

// TestMultiattachOtherHostInstanceDoesNotKeepConnection: an instance of
// another host holding the volume does not keep this host's connection.
func TestMultiattachOtherHostInstanceDoesNotKeepConnection(t *testing.T) {
	e := newEnv(t)
	a, v := e.instance(), e.volume(multiattach)
	other := e.instance(func(i *compute.Instance) { i.Host = "compute-2" })
	e.attachShared(a, v)
	att, err := e.volumes.AttachmentCreate(ctxT(t), v.ID, other.UUID, &volume.Connector{Host: "compute-2", IP: "127.0.0.2"}, "")
	if err != nil {
		t.Fatalf("attachment for an instance of compute-2: %v", err)
	}
	if err := e.volumes.AttachmentComplete(ctxT(t), att.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.api.DetachVolume(ctxT(t), compute.DetachRequest{InstanceUUID: a.UUID, VolumeID: v.ID}); err != nil {
		t.Fatalf("detach: %v", err)
	}
	if slices.Contains(e.driver.Connected(), v.ID) {
		t.Fatalf("volume %s still connected on %s after its only instance there detached", v.ID, e.driver.Host())
	}
}
