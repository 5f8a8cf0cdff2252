package compute_test

import (
	"strings"
	"testing"
	"time"

	"github.com/volattach/volattach/adapters/etcd/etcdtest"
	"github.com/volattach/volattach/compute"
)

// L3: an id no record can have ("", holding '/', megabytes long) is
// InstanceNotFound or VolumeNotFound (404), typed, with nothing written
// and the id not echoed in full.
func TestHostileIDsAreNotFound(t *testing.T) {
	e := newMemEnv(t, newChapBackend())
	i, v := e.instance(), e.memVolume("", false)
	huge := strings.Repeat("a", 3<<20)
	tests := []struct {
		name     string
		instance string
		volume   string
		want     *compute.Exception
	}{
		{"empty instance", "", v.ID, compute.ErrInstanceNotFound},
		{"instance with '/'", "../../etc/passwd", v.ID, compute.ErrInstanceNotFound},
		{"3 MiB instance", huge, v.ID, compute.ErrInstanceNotFound},
		{"3 MiB volume", i.UUID, huge, compute.ErrVolumeNotFound},
		{"volume with '/'", i.UUID, "a/b", compute.ErrVolumeNotFound},
		{"empty volume", i.UUID, "", compute.ErrVolumeNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := map[string]func() error{
				"attach": func() error {
					_, err := e.api.AttachVolume(ctxT(t), compute.AttachRequest{InstanceUUID: tt.instance, VolumeID: tt.volume})
					return err
				},
				"detach": func() error {
					return e.api.DetachVolume(ctxT(t), compute.DetachRequest{InstanceUUID: tt.instance, VolumeID: tt.volume})
				},
			}
			for what, call := range calls {
				rev := e.recRevision()
				err := call()
				requireRefusedAt(t, e, err, tt.want, rev)
				if len(err.Error()) > 512 {
					t.Errorf("%s: the error echoes the id: %d bytes", what, len(err.Error()))
				}
			}
			if tt.want == compute.ErrInstanceNotFound {
				if _, err := e.api.ListAttachments(ctxT(t), tt.instance); compute.HTTPStatus(err) != 404 {
					t.Errorf("ListAttachments: %v", err)
				}
			}
			if _, err := e.api.ShowAttachment(ctxT(t), tt.instance, tt.volume); compute.HTTPStatus(err) != 404 || len(err.Error()) > 512 {
				t.Errorf("ShowAttachment: status %d, %d bytes", compute.HTTPStatus(err), len(err.Error()))
			}
		})
	}
}

// L7: the attach request's tag, disk bus and device type are checked as
// upstream's schema checks its fields (tag: at most 60 characters, no ','
// or '/'; bus and device type among those a volume is attached with),
// before anything is read or written.
func TestAttachRequestFieldsValidated(t *testing.T) {
	e := newMemEnv(t, newChapBackend())
	tests := []struct {
		name string
		req  compute.AttachRequest
		ok   bool
	}{
		{"ide bus", compute.AttachRequest{DiskBus: "ide"}, false},
		{"xen bus", compute.AttachRequest{DiskBus: "xen"}, false},
		{"markup device type", compute.AttachRequest{DeviceType: "floppy\"/><disk"}, false},
		{"cdrom device type", compute.AttachRequest{DeviceType: "cdrom"}, false},
		{"huge tag with ',' and '/'", compute.AttachRequest{Tag: strings.Repeat("t,/", 40000)}, false},
		{"61-character tag", compute.AttachRequest{Tag: strings.Repeat("t", 61)}, false},
		{"tag with ','", compute.AttachRequest{Tag: "a,b"}, false},
		{"tag with '/'", compute.AttachRequest{Tag: "a/b"}, false},
		{"60-character tag", compute.AttachRequest{Tag: strings.Repeat("é", 60)}, true},
		{"scsi lun", compute.AttachRequest{DiskBus: "scsi", DeviceType: "lun"}, true},
		{"virtio disk", compute.AttachRequest{DiskBus: "virtio", DeviceType: "disk"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			i, v := e.instance(), e.memVolume("", false)
			req := tt.req
			req.InstanceUUID, req.VolumeID = i.UUID, v.ID
			rev := e.recRevision()
			va, err := e.api.AttachVolume(ctxT(t), req)
			if tt.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				e.requireAttached(i, v, va.Device)
				return
			}
			requireRefusedAt(t, e, err, compute.ErrValidationError, rev)
			if compute.HTTPStatus(err) != 400 || len(err.Error()) > 512 {
				t.Fatalf("status %d, %d-byte error", compute.HTTPStatus(err), len(err.Error()))
			}
		})
	}
}

// M6: every commit made under the instance lock carries its fence; here
// API.Reconcile's abandon of an attach that never reserved its volume.
func TestReconcileAbandonIsFenced(t *testing.T) {
	e := newMemEnv(t, newChapBackend())
	i, v := e.instance(), e.memVolume("", false)
	op := e.recordAttach(i, v)
	logged := &txnLog{Store: e.store}
	api, err := compute.NewAPI(compute.APIConfig{Store: logged, Volumes: e.mcfg.Volumes, Queue: etcdtest.WorkQueue(t), Locker: e.locker})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := api.Reconcile(ctxT(t), time.Minute); err != nil || n != 1 {
		t.Fatalf("reconcile: %d %v", n, err)
	}
	if got, _ := e.api.Operation(ctxT(t), op.ID); got.Step != compute.StepRolledBack {
		t.Fatalf("operation in %s", got.Step)
	}
	if len(logged.txns) == 0 {
		t.Fatal("no commit made")
	}
	for _, txn := range logged.txns {
		if len(txn.Fences) == 0 {
			t.Errorf("commit made under the instance lock has no fence: %d puts, %d deletes", len(txn.Puts), len(txn.Deletes))
		}
	}
	e.requireDetached(i, v)
}
