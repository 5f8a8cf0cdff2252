package compute_test

import (
	"slices"
	"testing"

	"github.com/volattach/volattach/compute"
)

func TestAttachDetachRoundTrip(t *testing.T) {
	e := newEnv(t)
	i := e.instance()
	v := e.volume()
	va := e.attach(i, v)
	if va.Device != "/dev/vdb" || va.VolumeID != v.ID || va.ServerID != i.UUID || va.AttachmentID == "" {
		t.Fatalf("attach returned %+v", va)
	}
	e.requireAttached(i, v, "/dev/vdb")
	if got := e.reload(i).BlockDevices; got[v.ID] != "/dev/vdb" {
		t.Errorf("instance index %v", got)
	}
	list, err := e.api.ListAttachments(ctxT(t), i.UUID)
	if err != nil || len(list) != 1 || list[0].Device != "/dev/vdb" {
		t.Fatalf("list: %+v %v", list, err)
	}
	show, err := e.api.ShowAttachment(ctxT(t), i.UUID, v.ID)
	if err != nil || show.BDMUUID == "" || show.AttachmentID != va.AttachmentID {
		t.Fatalf("show: %+v %v", show, err)
	}
	if err := e.api.DetachVolume(ctxT(t), compute.DetachRequest{InstanceUUID: i.UUID, VolumeID: v.ID}); err != nil {
		t.Fatal(err)
	}
	e.requireDetached(i, v)
	e.requireHistoryOnRows()
	want := []string{"instance.volume_attach.start", "instance.volume_attach.end", "compute.instance.volume.attach",
		"instance.volume_detach.start", "instance.volume_detach.end", "compute.instance.volume.detach"}
	if got := e.notes.events(v.ID); !slices.Equal(got, want) {
		t.Errorf("notifications %v, want %v", got, want)
	}
}
