package compute_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/compute/fake"
	"github.com/volattach/volattach/volume"
)

// One volume, two instances, at once: exactly one attach wins.
func TestRaceOneVolumeTwoInstances(t *testing.T) {
	e := newEnv(t)
	v := e.volume()
	a, b := e.instance(), e.instance()
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for n, i := range []*compute.Instance{a, b} {
		wg.Go(func() {
			_, errs[n] = e.api.AttachVolume(ctxT(t), compute.AttachRequest{InstanceUUID: i.UUID, VolumeID: v.ID})
		})
	}
	wg.Wait()
	won := 0
	for n, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, compute.ErrInvalidVolume) || compute.HTTPStatus(err) != 400:
			t.Errorf("instance %d: %v", n, err)
		}
	}
	if won != 1 {
		t.Fatalf("%d attaches won: %v", won, errs)
	}
	winner, loser := a, b
	if errs[0] != nil {
		winner, loser = b, a
	}
	m := e.mapping(winner.UUID, v.ID)
	e.requireAttached(winner, v, m.DeviceName)
	if e.mapping(loser.UUID, v.ID) != nil || len(e.driver.Disks(loser.UUID)) != 0 {
		t.Errorf("the losing instance kept a mapping or a disk")
	}
	if _, atts := e.volumeState(v.ID); len(atts) != 1 {
		t.Errorf("attachments %v", atts)
	}
	e.requireHistoryOnRows()
}

// 50 attaches to one instance at once: all succeed, with distinct device
// names and one mapping each.
func TestRaceFiftyAttachesOneInstance(t *testing.T) {
	const n = 50
	e := newEnv(t)
	i := e.instance()
	vols := make([]*volume.Volume, n)
	for k := range vols {
		vols[k] = e.volume()
	}
	devices := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for k, v := range vols {
		wg.Go(func() {
			va, err := e.api.AttachVolume(ctxT(t), compute.AttachRequest{InstanceUUID: i.UUID, VolumeID: v.ID})
			errs[k] = err
			if err == nil {
				devices[k] = va.Device
			}
		})
	}
	wg.Wait()
	seen := map[string]string{}
	for k, err := range errs {
		if err != nil {
			t.Fatalf("attach %d: %v", k, err)
		}
		if other, dup := seen[devices[k]]; dup {
			t.Fatalf("device %s given to %s and %s", devices[k], other, vols[k].ID)
		}
		seen[devices[k]] = vols[k].ID
		e.requireAttached(i, vols[k], devices[k])
	}
	if seen["/dev/vda"] != "" {
		t.Errorf("a volume got the root device")
	}
	if got := len(e.reload(i).BlockDevices); got != n {
		t.Errorf("index holds %d volumes, want %d", got, n)
	}
	if got := len(e.driver.Disks(i.UUID)); got != n {
		t.Errorf("guest has %d disks, want %d", got, n)
	}
	if p := e.driver.PeakConcurrency(i.UUID); p != 1 {
		t.Errorf("%d hypervisor calls ran at once on one instance; the instance lock allows 1", p)
	}
	e.requireHistoryOnRows()
}

// 20 attaches of one volume to one instance at once: one mapping, one
// attachment; every caller either gets that attachment or InvalidVolume.
func TestRaceSameVolumeSameInstance(t *testing.T) {
	const n = 20
	e := newEnv(t)
	i, v := e.instance(), e.volume()
	results := make([]*compute.VolumeAttachment, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for k := range n {
		wg.Go(func() {
			results[k], errs[k] = e.api.AttachVolume(ctxT(t), compute.AttachRequest{InstanceUUID: i.UUID, VolumeID: v.ID})
		})
	}
	wg.Wait()
	device := ""
	for k, err := range errs {
		switch {
		case err == nil:
			if device != "" && results[k].Device != device {
				t.Errorf("two devices for one mapping: %s and %s", device, results[k].Device)
			}
			device = results[k].Device
		case !errors.Is(err, compute.ErrInvalidVolume):
			t.Errorf("attach %d: %v", k, err)
		}
	}
	if device == "" {
		t.Fatalf("no attach succeeded: %v", errs)
	}
	e.requireAttached(i, v, device)
	if _, atts := e.volumeState(v.ID); len(atts) != 1 {
		t.Errorf("attachments %v", atts)
	}
	e.requireHistoryOnRows()
}

// Attaches and detaches of one instance at once run one at a time on the
// host (the per-instance lock), and each ends as asked.
func TestRaceAttachDetachSerialised(t *testing.T) {
	e := newEnv(t)
	i := e.instance()
	attached := []*volume.Volume{e.volume(), e.volume(), e.volume()}
	for _, v := range attached {
		e.attach(i, v)
	}
	fresh := []*volume.Volume{e.volume(), e.volume(), e.volume()}
	// The first attach holds the instance's lock, stuck in the guest.
	hold := e.faults.Hang(fake.StepAttachGuest)
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	wg.Go(func() {
		_, err := e.api.AttachVolume(ctxT(t), compute.AttachRequest{InstanceUUID: i.UUID, VolumeID: fresh[0].ID})
		errs <- err
	})
	<-hold.Reached()
	for _, v := range attached {
		wg.Go(func() {
			errs <- e.api.DetachVolume(ctxT(t), compute.DetachRequest{InstanceUUID: i.UUID, VolumeID: v.ID})
		})
	}
	for _, v := range fresh[1:] {
		wg.Go(func() {
			_, err := e.api.AttachVolume(ctxT(t), compute.AttachRequest{InstanceUUID: i.UUID, VolumeID: v.ID})
			errs <- err
		})
	}
	// Wait until every request is queued behind the lock, then let go.
	waitFor(t, func() bool { return e.queuedOperations(i) == 6 })
	if got := e.faults.Calls(fake.StepDetachGuest); got != 0 {
		t.Fatalf("a detach reached the guest while an attach held the instance: %d", got)
	}
	hold.Release()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	for _, v := range attached {
		e.requireDetached(i, v)
	}
	for _, v := range fresh {
		e.requireAttached(i, v, e.mapping(i.UUID, v.ID).DeviceName)
	}
	if p := e.driver.PeakConcurrency(i.UUID); p != 1 {
		t.Errorf("%d hypervisor calls ran at once on one instance", p)
	}
	e.requireHistoryOnRows()
}

// queuedOperations counts the instance's mappings with an operation in
// progress.
func (e *env) queuedOperations(i *compute.Instance) int {
	n := 0
	for volumeID := range e.reload(i).BlockDevices {
		if m := e.mapping(i.UUID, volumeID); m != nil && m.OperationID != "" {
			n++
		}
	}
	return n
}

// waitFor polls cond until it holds or 30 s pass.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 30s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// upstream's "already attached" trap: an attach whose caller gave up
// leaves a mapping, and every retry fails. Here the retry joins the
// attach still running and gets its device; no second mapping appears.
func TestRetryOfTimedOutAttach(t *testing.T) {
	waiting := make(chan struct{}, 4)
	e := newEnv(t, func(a *compute.APIConfig, _ *compute.ManagerConfig) {
		a.Queue = waitSignal{HostQueue: a.Queue, waiting: waiting}
	})
	i, v := e.instance(), e.volume()
	hold := e.faults.Hang(fake.StepAttachGuest)
	short, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := e.api.AttachVolume(short, compute.AttachRequest{InstanceUUID: i.UUID, VolumeID: v.ID})
	if !errors.Is(err, compute.ErrOperationTimedOut) || compute.HTTPStatus(err) != 504 {
		t.Fatalf("first attach: %v", err)
	}
	retried := make(chan *compute.VolumeAttachment, 1)
	go func() {
		va, err := e.api.AttachVolume(ctxT(t), compute.AttachRequest{InstanceUUID: i.UUID, VolumeID: v.ID})
		if err != nil {
			t.Error(err)
		}
		retried <- va
	}()
	<-hold.Reached()
	<-waiting // the first attach's wait
	<-waiting // the retry joined the running attach
	hold.Release()
	va := <-retried
	if va == nil {
		t.FailNow()
	}
	e.requireAttached(i, v, va.Device)
	ops := 0
	ids, _ := e.raw.List(ctxT(t), "operations", "", "", 0)
	for _, id := range ids {
		if op, _ := e.api.Operation(ctxT(t), id); op != nil && op.VolumeID == v.ID {
			ops++
		}
	}
	if ops != 1 {
		t.Errorf("%d operations for one attach and its retry", ops)
	}
	e.requireHistoryOnRows()
}

// waitSignal tells, on waiting, each time a caller starts waiting for an
// operation's result.
type waitSignal struct {
	compute.HostQueue
	waiting chan<- struct{}
}

func (q waitSignal) Wait(ctx context.Context, host, id string) ([]byte, error) {
	q.waiting <- struct{}{}
	return q.HostQueue.Wait(ctx, host, id)
}
