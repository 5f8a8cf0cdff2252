package compute_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/compute/fake"
	"github.com/volattach/volattach/volume"
)

// A shelved_offloaded instance has no hypervisor: attach records the
// mapping without a device and completes an attachment without a
// connector (the volume shows in-use); detach deletes the attachment and
// the mapping. No host is involved: this env runs no host agent at all.
func TestShelvedOffloadedAttachDetach(t *testing.T) {
	e := newEnv(t, withoutAgent())
	i, v := e.instance(inState(compute.VMShelvedOffloaded)), e.volume()
	va, err := e.api.AttachVolume(ctxT(t), compute.AttachRequest{InstanceUUID: i.UUID, VolumeID: v.ID, Device: "/dev/vdc"})
	if err != nil {
		t.Fatal(err)
	}
	if va.Device != "" {
		t.Errorf("device %q; upstream names none until unshelve", va.Device)
	}
	e.requireAttached(i, v, "")
	atts, err := e.volumes.Attachments(ctxT(t), v.ID)
	if err != nil || len(atts) != 1 || atts[0].Connector != nil || atts[0].InstanceUUID != i.UUID {
		t.Fatalf("attachments %+v %v", atts, err)
	}
	if calls := e.faults.Calls(fake.StepInitializeConnection) + e.faults.Calls(fake.StepConnectVolume); calls != 0 {
		t.Errorf("connected %d times for an instance without a host", calls)
	}
	op := e.lastOperation(i, v)
	if got := e.opHistory(op.ID); !slices.Equal(got, []string{"convert", "attach_volume"}) {
		t.Errorf("attach history %v", got)
	}
	if err := e.api.DetachVolume(ctxT(t), compute.DetachRequest{InstanceUUID: i.UUID, VolumeID: v.ID}); err != nil {
		t.Fatal(err)
	}
	e.requireDetached(i, v)
	if e.faults.Calls(fake.StepBeginDetaching) != 0 {
		t.Errorf("begin_detaching called; upstream skips it for attachments-API mappings")
	}
	e.requireHistoryOnRows()
}

// A failed completion rolls the offloaded attach back: the attachment that
// reserved the volume is deleted and the mapping destroyed.
func TestShelvedOffloadedAttachRollback(t *testing.T) {
	for _, step := range []string{fake.StepAttachmentCreate, fake.StepAttachmentComplete} {
		t.Run(step, func(t *testing.T) {
			e := newEnv(t, withoutAgent())
			i, v := e.instance(inState(compute.VMShelvedOffloaded)), e.volume()
			e.faults.FailOnce(step, nil)
			// The failure comes back from the operation record: its class
			// and message survive, not the Go error value.
			_, err := e.api.AttachVolume(ctxT(t), compute.AttachRequest{InstanceUUID: i.UUID, VolumeID: v.ID})
			if err == nil || compute.HTTPStatus(err) != 500 || !strings.Contains(err.Error(), fake.ErrInjected.Error()) {
				t.Fatalf("got %v", err)
			}
			e.requireDetached(i, v)
			e.requireHistoryOnRows()
		})
	}
}

// An attach to a shelved (not offloaded) instance still goes to its host.
func TestShelvedAttachUsesHost(t *testing.T) {
	e := newEnv(t)
	i, v := e.instance(inState(compute.VMShelved)), e.volume()
	va := e.attach(i, v)
	e.requireAttached(i, v, va.Device)
	if e.faults.Calls(fake.StepInitializeConnection) != 1 {
		t.Errorf("shelved instance was not connected on its host")
	}
	if st, _ := e.volumeState(v.ID); st != volume.StatusInUse {
		t.Errorf("status %s", st)
	}
}
