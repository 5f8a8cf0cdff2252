package compute_test

import (
	"errors"
	"testing"
	"time"

	"github.com/volattach/volattach/adapters/etcd"
	"github.com/volattach/volattach/adapters/etcd/etcdtest"
	"github.com/volattach/volattach/adapters/storage/file"
	"github.com/volattach/volattach/adapters/testenv"
	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/compute/fake"
	"github.com/volattach/volattach/volume"
)

// newServiceEnv is newEnv wired as adapters/node wires a node: the volume
// side asks the compute side (compute.AttachmentUsage) before a caller
// other than the compute service removes an attachment, and the compute
// side calls the volume side as the service (compute.ServiceVolumes).
func newServiceEnv(t *testing.T) *env {
	t.Helper()
	testenv.NeedCommand(t, "qemu-img")
	e := &env{t: t, faults: fake.NewFaults(), notes: &recorder{}, hosts: &hostsUp{down: map[string]bool{}}}
	e.raw = etcdtest.Store(t)
	e.store = &fake.Store{Store: e.raw, Faults: e.faults}
	e.locker = etcdtest.Locker(t, etcd.WithSessionTTL(5*time.Second))
	backend, err := file.New(file.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	e.volumes, err = volume.NewService(volume.WithStore(e.store), volume.WithLocker(e.locker), volume.WithBackend(backend),
		volume.WithAttachmentUsage(compute.AttachmentUsage{Store: e.raw}))
	if err != nil {
		t.Fatal(err)
	}
	vapi := compute.ServiceVolumes(e.volumes)
	e.driver = fake.NewDriver(testHost, e.faults)
	if e.api, err = compute.NewAPI(compute.APIConfig{
		Store: e.store, Volumes: vapi, Queue: etcdtest.WorkQueue(t), Locker: e.locker, Services: e.hosts, Notifier: e.notes,
	}); err != nil {
		t.Fatal(err)
	}
	e.stop = func() {}
	e.mcfg = compute.ManagerConfig{
		Host: testHost, Store: e.store, Locker: e.locker, Queue: etcdtest.WorkQueue(t),
		Volumes: vapi, Driver: e.driver, Notifier: e.notes, RetryInterval: 5 * time.Millisecond, RetryMax: 50 * time.Millisecond,
	}
	e.startAgent(e.mcfg)
	return e
}

// TestUserCannotRemoveAttachmentComputeUses (V33, upstream bug 2004555):
// a volume attached through the compute API cannot be detached behind the
// compute side's back by a user of the volume API (os-detach,
// os-terminate_connection, os-force_detach by an admin, DELETE
// /attachments): 409 ConflictNovaUsingAttachment, nothing changed, the
// guest keeps its disk. The compute side's own detach, calling as the
// service, goes through; after it nothing is left to protect.
func TestUserCannotRemoveAttachmentComputeUses(t *testing.T) {
	e := newServiceEnv(t)
	i := e.instance()
	v := e.volume()
	va := e.attach(i, v)
	e.requireAttached(i, v, va.Device)
	m := e.mapping(i.UUID, v.ID)
	ctx := ctxT(t)
	conn := volume.Connector{Host: testHost, IP: "127.0.0.1"}
	for name, call := range map[string]func() error{
		"os-detach":               func() error { return e.volumes.Detach(ctx, v.ID, m.AttachmentID) },
		"os-terminate_connection": func() error { return e.volumes.TerminateConnection(ctx, v.ID, conn) },
		"os-force_detach": func() error {
			return e.volumes.ForceDetach(ctx, volume.Caller{Admin: true}, v.ID, m.AttachmentID, nil)
		},
		"attachment_delete": func() error { return e.volumes.AttachmentDelete(ctx, m.AttachmentID) },
	} {
		before := etcdtest.Revision(t)
		err := call()
		if !errors.Is(err, volume.ErrConflictNovaUsingAttachment) {
			t.Errorf("user %s of an attachment the compute side uses: %v; want ConflictNovaUsingAttachment", name, err)
		}
		if after := etcdtest.Revision(t); after != before {
			t.Errorf("user %s: revision %d -> %d", name, before, after)
		}
	}
	e.requireAttached(i, v, va.Device)
	if err := e.api.DetachVolume(ctxT(t), compute.DetachRequest{InstanceUUID: i.UUID, VolumeID: v.ID}); err != nil {
		t.Fatalf("the compute side's detach: %v", err)
	}
	e.requireDetached(i, v)
}

// TestAttachmentUsage: the compute side's answer follows the mapping.
func TestAttachmentUsage(t *testing.T) {
	e := newServiceEnv(t)
	i := e.instance()
	v := e.volume()
	e.attach(i, v)
	m := e.mapping(i.UUID, v.ID)
	u := compute.AttachmentUsage{Store: e.raw}
	for _, tc := range []struct {
		instance, volume, attachment string
		want                         bool
	}{
		{i.UUID, v.ID, m.AttachmentID, true},
		{i.UUID, v.ID, volume.NewUUID(), false},
		{volume.NewUUID(), v.ID, m.AttachmentID, false},
		{i.UUID, volume.NewUUID(), m.AttachmentID, false},
	} {
		got, err := u.InstanceUsesAttachment(ctxT(t), tc.instance, tc.volume, tc.attachment)
		if err != nil || got != tc.want {
			t.Errorf("InstanceUsesAttachment(%s, %s, %s) = %v, %v; want %v", tc.instance, tc.volume, tc.attachment, got, err, tc.want)
		}
	}
}
