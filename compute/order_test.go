package compute_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/volume"
)

// N15: on an instance with a host, upstream's conductor reserves the
// device name on the compute host (TooManyDiskDevices 403) before
// check_attach_and_reserve_volume checks the availability zone
// (InvalidVolume 400), which it checks before the multiattach microversion
// (400).
func TestAttachCheckOrder(t *testing.T) {
	full := func(i *compute.Instance) { i.BlockDevices = map[string]string{"x": "/dev/vdb"} } // vda root + vdb: two disks
	tests := []struct {
		name        string
		maxDisks    int
		inst        []instanceSpec
		multiattach bool
		want        *compute.Exception
	}{
		{"full bus before the zone", 2, []instanceSpec{inZone("az1"), full}, false, compute.ErrTooManyDiskDevices},
		{"full bus before the microversion", 2, []instanceSpec{full}, true, compute.ErrTooManyDiskDevices},
		{"zone before the microversion", -1, []instanceSpec{inZone("az1")}, true, compute.ErrInvalidVolume},
		{"microversion last", -1, nil, true, compute.ErrMultiattachNotSupportedOldMicroversion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newMemEnv(t, newChapBackend(), withCrossAZDisabled(), withMaxDisks(tt.maxDisks))
			i := e.instance(tt.inst...)
			v := e.memVolume("", tt.multiattach)
			rev := e.recRevision()
			_, err := e.api.AttachVolume(ctxT(t), compute.AttachRequest{InstanceUUID: i.UUID, VolumeID: v.ID})
			requireRefusedAt(t, e, err, tt.want, rev)
		})
	}
}

// requireRefusedAt checks err is of class want and nothing was written.
func requireRefusedAt(t *testing.T, e *env, err error, want *compute.Exception, rev int64) {
	t.Helper()
	var ce *compute.Error
	if !errors.As(err, &ce) || ce.Exception != want {
		t.Fatalf("got %v; want %s", err, want.Name)
	}
	if now := e.recRevision(); now != rev {
		t.Fatalf("refused request wrote: revision %d -> %d", rev, now)
	}
}

// N17: upstream's controller looks up the volume (404), the mapping (404)
// and refuses the root device (400) before detach_volume's decorators
// check the lock and the state (409).
func TestDetachCheckOrder(t *testing.T) {
	badState := func(i *compute.Instance) { i.VMState = compute.VMError }
	tests := []struct {
		name  string
		inst  []instanceSpec
		setup func(e *env, i *compute.Instance) string // the volume to detach
		want  *compute.Exception
	}{
		{"locked, unknown volume", []instanceSpec{locked}, func(*env, *compute.Instance) string { return volume.NewUUID() }, compute.ErrVolumeNotFound},
		{"error state, not attached", []instanceSpec{badState}, func(e *env, _ *compute.Instance) string { return e.memVolume("", false).ID }, compute.ErrVolumeBDMNotFound},
		{"locked, root device", []instanceSpec{locked}, func(e *env, i *compute.Instance) string {
			v := e.memVolume("", false)
			zero := 0
			m := &compute.BlockDeviceMapping{UUID: volume.NewUUID(), InstanceUUID: i.UUID, VolumeID: v.ID, SourceType: compute.SourceVolume,
				DestinationType: compute.DestinationVolume, DeviceName: "/dev/vda", BootIndex: &zero}
			e.recPut([]volattach.Record{m})
			return v.ID
		}, compute.ErrVolumeBDMIsRoot},
		{"locked, attached", []instanceSpec{locked}, func(e *env, i *compute.Instance) string {
			v := e.memVolume("", false)
			e.update(i, func(i *compute.Instance) { i.Locked = false })
			e.attach(i, v)
			e.update(i, locked)
			return v.ID
		}, compute.ErrInstanceIsLocked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newMemEnv(t, newChapBackend())
			i := e.instance(tt.inst...)
			vid := tt.setup(e, i)
			rev := e.recRevision()
			err := e.api.DetachVolume(ctxT(t), compute.DetachRequest{InstanceUUID: i.UUID, VolumeID: vid})
			requireRefusedAt(t, e, err, tt.want, rev)
		})
	}
}

// N20: a detach refused because the instance's compute service is down
// answers upstream's bare ServiceUnavailable (409), naming no host.
func TestDetachServiceDownNamesNoHost(t *testing.T) {
	e := newMemEnv(t, newChapBackend())
	i, v := e.instance(), e.memVolume("", false)
	e.attach(i, v)
	e.hosts.set(testHost, false)
	rev := e.recRevision()
	err := e.api.DetachVolume(ctxT(t), compute.DetachRequest{InstanceUUID: i.UUID, VolumeID: v.ID})
	requireRefusedAt(t, e, err, compute.ErrComputeServiceUnavailable, rev)
	if compute.HTTPStatus(err) != 409 || strings.Contains(err.Error(), testHost) {
		t.Fatalf("refusal %q (status %d) names the host or is not 409", err, compute.HTTPStatus(err))
	}
	e.hosts.set(testHost, true)
	if err := e.api.DetachVolume(context.Background(), compute.DetachRequest{InstanceUUID: i.UUID, VolumeID: v.ID}); err != nil {
		t.Fatal(err)
	}
}
