package compute_test

import (
	"context"
	"errors"
	"testing"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/adapters/etcd/etcdtest"
	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/volume"
)

func withCrossAZDisabled() envOption {
	return func(a *compute.APIConfig, _ *compute.ManagerConfig) { a.CrossAZAttachDisabled = true }
}

func withMaxDisks(n int) envOption {
	return func(a *compute.APIConfig, _ *compute.ManagerConfig) { a.Namer = &compute.DeviceNamer{MaxDisks: n} }
}

// update changes a stored instance.
func (e *env) update(i *compute.Instance, change func(*compute.Instance)) {
	e.t.Helper()
	fresh := e.reload(i)
	change(fresh)
	if _, err := e.raw.Commit(context.Background(), volattach.Txn{Puts: []volattach.Record{fresh}}); err != nil {
		e.t.Fatal(err)
	}
}

// requireRefused checks err is the upstream exception with its status, and
// that nothing was written since rev.
func requireRefused(t *testing.T, err error, want *compute.Exception, status int, rev int64) {
	t.Helper()
	if !errors.Is(err, want) || compute.HTTPStatus(err) != status {
		t.Fatalf("got %v (status %d); want %s %d", err, compute.HTTPStatus(err), want.Name, status)
	}
	if now := etcdtest.Revision(t); now != rev {
		t.Fatalf("refused request wrote to etcd: revision %d -> %d", rev, now)
	}
}

func TestAttachGates(t *testing.T) {
	type setup func(e *env) compute.AttachRequest
	basic := func(specs ...instanceSpec) setup {
		return func(e *env) compute.AttachRequest {
			return compute.AttachRequest{InstanceUUID: e.instance(specs...).UUID, VolumeID: e.volume().ID}
		}
	}
	tests := []struct {
		name   string
		opts   []envOption
		setup  setup
		refuse *compute.Exception
		status int
	}{
		{"accepted", nil, basic(), nil, 0},
		{"unknown instance", nil, func(e *env) compute.AttachRequest {
			return compute.AttachRequest{InstanceUUID: volume.NewUUID(), VolumeID: e.volume().ID}
		}, compute.ErrInstanceNotFound, 404},
		{"locked", nil, basic(locked), compute.ErrInstanceIsLocked, 409},
		{"locked, admin", nil, func(e *env) compute.AttachRequest {
			r := basic(locked)(e)
			r.Admin = true
			return r
		}, nil, 0},
		{"task in progress", nil, basic(withTask(compute.TaskRebooting)), compute.ErrInstanceInvalidState, 409},
		{"never launched", nil, basic(neverLaunched), compute.ErrInstanceInvalidState, 409},
		{"rescued", nil, basic(inState(compute.VMRescued)), compute.ErrInstanceInvalidState, 409},
		{"invalid device path", nil, func(e *env) compute.AttachRequest {
			r := basic()(e)
			r.Device = "vdb"
			return r
		}, compute.ErrInvalidDevicePath, 400},
		{"requested device ignored", nil, func(e *env) compute.AttachRequest {
			r := basic()(e)
			r.Device = "/dev/vdz"
			return r
		}, nil, 0},
		// D2: the libvirt driver ignores a requested name in use too.
		{"device in use ignored", nil, func(e *env) compute.AttachRequest {
			r := basic()(e)
			r.Device = "/dev/vda"
			return r
		}, nil, 0},
		{"too many disks", []envOption{withMaxDisks(1)}, basic(), compute.ErrTooManyDiskDevices, 403},
		{"unknown volume", nil, func(e *env) compute.AttachRequest {
			return compute.AttachRequest{InstanceUUID: e.instance().UUID, VolumeID: volume.NewUUID()}
		}, compute.ErrVolumeNotFound, 404},
		{"already attached here", nil, func(e *env) compute.AttachRequest {
			i, v := e.instance(), e.volume()
			e.attach(i, v)
			return compute.AttachRequest{InstanceUUID: i.UUID, VolumeID: v.ID}
		}, compute.ErrInvalidVolume, 400},
		{"attached elsewhere", nil, func(e *env) compute.AttachRequest {
			v := e.volume()
			e.attach(e.instance(), v)
			return compute.AttachRequest{InstanceUUID: e.instance().UUID, VolumeID: v.ID}
		}, compute.ErrInvalidVolume, 400},
		{"multiattach before 2.60", nil, func(e *env) compute.AttachRequest {
			return compute.AttachRequest{InstanceUUID: e.instance().UUID, VolumeID: e.volume(multiattach).ID}
		}, compute.ErrMultiattachNotSupportedOldMicroversion, 400},
		{"multiattach at 2.60, attached elsewhere", nil, func(e *env) compute.AttachRequest {
			v := e.volume(multiattach)
			if _, err := e.api.AttachVolume(ctxT(e.t), compute.AttachRequest{InstanceUUID: e.instance().UUID, VolumeID: v.ID, SupportsMultiattach: true}); err != nil {
				e.t.Fatal(err)
			}
			return compute.AttachRequest{InstanceUUID: e.instance().UUID, VolumeID: v.ID, SupportsMultiattach: true}
		}, nil, 0},
		{"other zone, cross-AZ allowed", nil, func(e *env) compute.AttachRequest {
			return compute.AttachRequest{InstanceUUID: e.instance(inZone("az1")).UUID, VolumeID: e.volume(volumeZone("az2")).ID}
		}, nil, 0},
		{"other zone, cross-AZ disabled", []envOption{withCrossAZDisabled()}, func(e *env) compute.AttachRequest {
			return compute.AttachRequest{InstanceUUID: e.instance(inZone("az1")).UUID, VolumeID: e.volume(volumeZone("az2")).ID}
		}, compute.ErrInvalidVolume, 400},
		{"same zone, cross-AZ disabled", []envOption{withCrossAZDisabled()}, basic(), nil, 0},
		{"shelved_offloaded, tagged", nil, func(e *env) compute.AttachRequest {
			r := basic(inState(compute.VMShelvedOffloaded))(e)
			r.Tag = "db"
			return r
		}, compute.ErrVolumeTaggedAttachToShelvedNotSupported, 400},
		{"shelved_offloaded, multiattach", nil, func(e *env) compute.AttachRequest {
			return compute.AttachRequest{InstanceUUID: e.instance(inState(compute.VMShelvedOffloaded)).UUID, VolumeID: e.volume(multiattach).ID, SupportsMultiattach: true}
		}, compute.ErrMultiattachToShelvedNotSupported, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.opts...)
			req := tt.setup(e)
			rev := etcdtest.Revision(t)
			va, err := e.api.AttachVolume(ctxT(t), req)
			if tt.refuse != nil {
				requireRefused(t, err, tt.refuse, tt.status, rev)
				return
			}
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			i := &compute.Instance{UUID: req.InstanceUUID, Host: testHost}
			v := &volume.Volume{ID: req.VolumeID}
			e.requireAttached(i, v, va.Device)
			e.requireHistoryOnRows()
		})
	}
}

// The volume side refuses the reservation after the mapping exists: as
// upstream, the mapping is destroyed again and InvalidVolume returned.
func TestAttachReserveRefusedDestroysMapping(t *testing.T) {
	e := newEnv(t)
	i, v := e.instance(), e.volume()
	if err := e.volumes.ResetStatus(ctxT(t), volume.Caller{Admin: true}, v.ID, volume.ResetRequest{Status: volume.StatusError}); err != nil {
		t.Fatal(err)
	}
	_, err := e.api.AttachVolume(ctxT(t), compute.AttachRequest{InstanceUUID: i.UUID, VolumeID: v.ID})
	if !errors.Is(err, compute.ErrInvalidVolume) || !errors.Is(err, volume.ErrInvalidVolume) || compute.HTTPStatus(err) != 400 {
		t.Fatalf("got %v", err)
	}
	if m := e.mapping(i.UUID, v.ID); m != nil {
		t.Fatalf("mapping left behind: %+v", m)
	}
	if len(e.reload(i).BlockDevices) != 0 {
		t.Fatalf("index left behind: %v", e.reload(i).BlockDevices)
	}
	if st, _ := e.volumeState(v.ID); st != volume.StatusError {
		t.Fatalf("volume status %s", st)
	}
	e.requireHistoryOnRows()
}

func TestAttachInEachVMState(t *testing.T) {
	for _, s := range compute.VMStates {
		t.Run(string(s), func(t *testing.T) {
			e := newEnv(t)
			i, v := e.instance(inState(s)), e.volume()
			rev := etcdtest.Revision(t)
			va, err := e.api.AttachVolume(ctxT(t), compute.AttachRequest{InstanceUUID: i.UUID, VolumeID: v.ID})
			allowed := false
			for _, a := range compute.VolumeAttachVMStates {
				allowed = allowed || a == s
			}
			if !allowed {
				requireRefused(t, err, compute.ErrInstanceInvalidState, 409, rev)
				return
			}
			if err != nil {
				t.Fatalf("attach in %s: %v", s, err)
			}
			e.requireAttached(i, v, va.Device)
			if err := e.api.DetachVolume(ctxT(t), compute.DetachRequest{InstanceUUID: i.UUID, VolumeID: v.ID}); err != nil {
				t.Fatalf("detach in %s: %v", s, err)
			}
			e.requireDetached(i, v)
			e.requireHistoryOnRows()
		})
	}
}

func TestDetachGates(t *testing.T) {
	type setup func(e *env) compute.DetachRequest
	attached := func(e *env) (*compute.Instance, *volume.Volume) {
		i, v := e.instance(), e.volume()
		e.attach(i, v)
		return i, v
	}
	tests := []struct {
		name   string
		setup  setup
		refuse *compute.Exception
		status int
	}{
		{"accepted", func(e *env) compute.DetachRequest {
			i, v := attached(e)
			return compute.DetachRequest{InstanceUUID: i.UUID, VolumeID: v.ID}
		}, nil, 0},
		{"unknown instance", func(e *env) compute.DetachRequest {
			_, v := attached(e)
			return compute.DetachRequest{InstanceUUID: volume.NewUUID(), VolumeID: v.ID}
		}, compute.ErrInstanceNotFound, 404},
		{"locked", func(e *env) compute.DetachRequest {
			i, v := attached(e)
			e.update(i, locked)
			return compute.DetachRequest{InstanceUUID: i.UUID, VolumeID: v.ID}
		}, compute.ErrInstanceIsLocked, 409},
		{"locked, admin", func(e *env) compute.DetachRequest {
			i, v := attached(e)
			e.update(i, locked)
			return compute.DetachRequest{InstanceUUID: i.UUID, VolumeID: v.ID, Caller: compute.Caller{Admin: true}}
		}, nil, 0},
		{"rescued", func(e *env) compute.DetachRequest {
			i, v := attached(e)
			e.update(i, inState(compute.VMRescued))
			return compute.DetachRequest{InstanceUUID: i.UUID, VolumeID: v.ID}
		}, compute.ErrInstanceInvalidState, 409},
		{"task in progress", func(e *env) compute.DetachRequest {
			i, v := attached(e)
			e.update(i, withTask(compute.TaskMigrating))
			return compute.DetachRequest{InstanceUUID: i.UUID, VolumeID: v.ID}
		}, compute.ErrInstanceInvalidState, 409},
		{"unknown volume", func(e *env) compute.DetachRequest {
			i, _ := attached(e)
			return compute.DetachRequest{InstanceUUID: i.UUID, VolumeID: volume.NewUUID()}
		}, compute.ErrVolumeNotFound, 404},
		{"not attached", func(e *env) compute.DetachRequest {
			i, _ := attached(e)
			return compute.DetachRequest{InstanceUUID: i.UUID, VolumeID: e.volume().ID}
		}, compute.ErrVolumeBDMNotFound, 404},
		{"root device", func(e *env) compute.DetachRequest {
			i, v := attached(e)
			m := e.mapping(i.UUID, v.ID)
			zero := 0
			m.BootIndex = &zero
			if _, err := e.raw.Commit(context.Background(), volattach.Txn{Puts: []volattach.Record{m}}); err != nil {
				e.t.Fatal(err)
			}
			return compute.DetachRequest{InstanceUUID: i.UUID, VolumeID: v.ID}
		}, compute.ErrVolumeBDMIsRoot, 400},
		{"host down", func(e *env) compute.DetachRequest {
			i, v := attached(e)
			e.hosts.set(testHost, false)
			return compute.DetachRequest{InstanceUUID: i.UUID, VolumeID: v.ID}
		}, compute.ErrComputeServiceUnavailable, 409},
		{"volume not in-use", func(e *env) compute.DetachRequest {
			i, v := attached(e)
			if err := e.volumes.ResetStatus(ctxT(e.t), volume.Caller{Admin: true}, v.ID, volume.ResetRequest{Status: volume.StatusError}); err != nil {
				e.t.Fatal(err)
			}
			return compute.DetachRequest{InstanceUUID: i.UUID, VolumeID: v.ID}
		}, compute.ErrInvalidVolume, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			req := tt.setup(e)
			rev := etcdtest.Revision(t)
			err := e.api.DetachVolume(ctxT(t), req)
			if tt.refuse != nil {
				requireRefused(t, err, tt.refuse, tt.status, rev)
				return
			}
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			e.requireDetached(&compute.Instance{UUID: req.InstanceUUID, Host: testHost}, &volume.Volume{ID: req.VolumeID})
			e.requireHistoryOnRows()
		})
	}
}
