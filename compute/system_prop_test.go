package compute_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/adapters/etcd/etcdtest"
	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/compute/fake"
	"github.com/volattach/volattach/volume"
)

// Bounds of the whole-system property test under `go test` (and so under
// make test, with -race on a 2-core machine): rapid's own flags
// (-rapid.checks, -rapid.steps) or RAPID_CHECKS/RAPID_STEPS override them.
const (
	systemChecks = 10
	systemSteps  = 40
)

// TestSystemProperties runs random mixes of attaches, detaches, instance
// lifecycle operations, injected faults, and compute processes crashing at
// checkpoints or restarting, on several instances (on a host and
// shelved_offloaded) and volumes (some multiattach).
//
// Invariant: after every step the invariants that hold at every moment
// hold (alwaysInvariants), and once reconciled every invariant holds
// (settledInvariants): nothing stuck, nothing orphaned, every operation
// completed or fully undone. Besides, every request the API answers keeps
// its word: a successful attach leaves the volume attached and in the
// guest, a successful detach leaves nothing behind, and a refused or failed
// one leaves no mapping where there was none and takes none away.
func TestSystemProperties(t *testing.T) {
	defer rapidBounds(systemChecks, systemSteps)()
	endpoints := etcdtest.Endpoints(t)
	prefix := etcdtest.Prefix(t)
	n := 0
	seen := stats{}
	rapid.Check(t, func(rt *rapid.T) {
		n++
		w := openWorld(rt, endpoints, prefix+"check-"+strconv.Itoa(n)+"/")
		defer w.close()
		s := newSystem(rt, w, seen)
		rt.Repeat(rapid.StateMachineActions(s))
		s.Reconcile(rt)
	})
	t.Logf("%d runs: %v", n, seen)
}

// stats counts what the runs did, to show what the test covered.
type stats map[string]int

// rapidBounds sets rapid's number of checks and steps unless the command
// line or the environment set them, and returns a func restoring them.
func rapidBounds(checks, steps int) func() {
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var undo []func()
	for name, env := range map[string]string{"rapid.checks": "RAPID_CHECKS", "rapid.steps": "RAPID_STEPS"} {
		f := flag.Lookup(name)
		if f == nil || set[name] || lookupEnv(env) {
			continue
		}
		old := f.Value.String()
		value := checks
		if name == "rapid.steps" {
			value = steps
		}
		f.Value.Set(strconv.Itoa(value))
		undo = append(undo, func() { f.Value.Set(old) })
	}
	return func() {
		for _, u := range undo {
			u()
		}
	}
}

func lookupEnv(name string) bool {
	_, ok := os.LookupEnv(name)
	return ok
}

// system is the state machine: the world and the names of what it holds.
type system struct {
	seen      stats
	w         *world
	instances []string
	volumes   []*volume.Volume
}

func newSystem(t *rapid.T, w *world, seen stats) *system {
	s := &system{w: w, seen: seen}
	// Two instances on the host, one shelved_offloaded; two volumes of
	// each kind.
	for _, offloaded := range []bool{false, false, true} {
		s.instances = append(s.instances, w.instance(offloaded).UUID)
	}
	for _, multi := range []bool{false, false, true, true} {
		s.volumes = append(s.volumes, w.volume(multi))
	}
	return s
}

// callTimeout bounds one API request. No request needs nearly as long,
// except one that joins an attach that was never handed to its host (its
// API call failed to undo it): that one waits for a result no agent will
// send and answers OperationTimedOut (a known issue).
const callTimeout = 15 * time.Second

// ctx is the context of one API request.
func (s *system) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), callTimeout)
}

// read reads the whole system now.
func (s *system) read() *snapshot {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return s.w.snapshot(ctx)
}

// pairWanted says which pairs pick prefers.
type pairWanted int

const (
	// mappedPair: the volume is mapped to the instance, with no operation
	// running on the pair.
	mappedPair pairWanted = iota
	// freePair: the volume is not mapped to the instance.
	freePair
)

// pick draws an instance and a volume: most of the time a pair of the
// wanted kind (on a host or shelved_offloaded as offloaded says, when not
// nil), so that requests mostly get past the API's gates; otherwise any
// pair, gates included.
func (s *system) pick(t *rapid.T, want pairWanted, offloaded *bool) (string, *volume.Volume) {
	type pair struct {
		inst string
		vol  *volume.Volume
	}
	var all, wanted []pair
	snap := s.read()
	for _, inst := range s.instances {
		i := snap.instances[inst]
		for _, v := range s.volumes {
			p := pair{inst, v}
			all = append(all, p)
			if offloaded != nil && (i.Host == "") != *offloaded {
				continue
			}
			m := snap.mapping(v.ID, inst)
			if (want == mappedPair && m != nil && m.OperationID == "") || (want == freePair && m == nil) {
				wanted = append(wanted, p)
			}
		}
	}
	from := all
	if len(wanted) > 0 && rapid.IntRange(0, 4).Draw(t, "wanted pair") > 0 {
		from = wanted
	}
	p := from[rapid.IntRange(0, len(from)-1).Draw(t, "pair")]
	return p.inst, p.vol
}

// Check runs after every action: the invariants of every moment.
func (s *system) Check(t *rapid.T) {
	snap := s.read()
	for _, v := range snap.violations(false) {
		t.Error(v)
	}
	if t.Failed() {
		s.dump(t, snap)
	}
}

// Attach attaches a volume through the API and waits for the result.
func (s *system) Attach(t *rapid.T) {
	inst, v := s.pick(t, freePair, nil)
	req := compute.AttachRequest{
		InstanceUUID: inst, VolumeID: v.ID,
		DiskBus:             rapid.SampledFrom([]string{"", compute.BusVirtio, compute.BusSCSI}).Draw(t, "bus"),
		SupportsMultiattach: rapid.IntRange(0, 4).Draw(t, "microversion") > 0,
	}
	snap := s.read()
	if staleDisk(snap, v.ID, inst) {
		t.Skip("the guest still has a disk of the volume from an attach whose rollback could not remove it (known issue: an attach then adopts it at its old device)")
	}
	before := snap.mapping(v.ID, inst)
	ctx, cancel := s.ctx()
	defer cancel()
	va, err := s.w.proc.api.AttachVolume(ctx, req)
	after := s.read()
	if err != nil {
		s.seen["attach refused or failed"]++
		t.Logf("attach %s to %s: %v", v.ID, inst, err)
		requireKnownError(t, err)
		// A failed attach leaves no mapping where there was none.
		if before == nil && after.mapping(v.ID, inst) != nil && !after.busy(v.ID, inst) {
			t.Fatalf("attach failed (%v) but left a mapping of %s on %s", err, v.ID, inst)
		}
		return
	}
	s.seen["attach succeeded"]++
	// A successful attach leaves the volume attached (and in the guest,
	// on a host) at the device it answered with.
	if problems := attachedPair(after, v.ID, inst, va.Device); len(problems) > 0 {
		t.Fatalf("attach of %s to %s succeeded at %s, but %v", v.ID, inst, va.Device, problems)
	}
}

// Detach detaches a volume through the API and waits for the result.
func (s *system) Detach(t *rapid.T) {
	inst, v := s.pick(t, mappedPair, nil)
	before := s.read().mapping(v.ID, inst)
	ctx, cancel := s.ctx()
	defer cancel()
	err := s.w.proc.api.DetachVolume(ctx, compute.DetachRequest{InstanceUUID: inst, VolumeID: v.ID})
	after := s.read()
	if err != nil {
		s.seen["detach refused or failed"]++
		t.Logf("detach %s from %s: %v", v.ID, inst, err)
		requireKnownError(t, err)
		// A refused or failed detach takes no mapping away (one whose
		// operation was still running may end meanwhile).
		if before != nil && before.OperationID == "" && after.mapping(v.ID, inst) == nil {
			t.Fatalf("detach failed (%v) but the mapping of %s on %s is gone", err, v.ID, inst)
		}
		return
	}
	s.seen["detach succeeded"]++
	// A successful detach leaves nothing of the pair behind.
	if problems := detachedPair(after, v.ID, inst); len(problems) > 0 {
		t.Fatalf("detach of %s from %s succeeded, but %v", v.ID, inst, problems)
	}
}

// lifecycleActions are the vm_state table's operations the test drives.
var lifecycleActions = []compute.Action{
	compute.ActionStop, compute.ActionStart, compute.ActionPause, compute.ActionUnpause,
	compute.ActionSuspend, compute.ActionResume, compute.ActionRescue, compute.ActionUnrescue,
	compute.ActionResize, compute.ActionConfirmResize, compute.ActionRevertResize,
	compute.ActionShelve, compute.ActionShelveOffload, compute.ActionUnshelve,
	compute.ActionSoftDelete, compute.ActionRestore, compute.ActionError,
}

// Lifecycle moves an instance along the compute.vm_state table, as the
// compute host does when an operation ends, with the row in its history. A
// refused action changes nothing. The library does not hand volumes over
// on shelve_offload and unshelve (upstream terminates their connections
// and connects them again on the new host), so the test only offloads or
// brings back an instance without volumes; shelve_offload drops the host,
// unshelve gives it back with an empty guest.
func (s *system) Lifecycle(t *rapid.T) {
	uuid := rapid.SampledFrom(s.instances).Draw(t, "instance")
	actions := lifecycleActions
	if current := s.read().instances[uuid]; current != nil && rapid.IntRange(0, 4).Draw(t, "permitted action") > 0 {
		var permitted []compute.Action
		for _, a := range compute.VMStateTable.Permitted(current.VMState, compute.Request{Instance: current}) {
			if slices.Contains(lifecycleActions, a) {
				permitted = append(permitted, a)
			}
		}
		if len(permitted) > 0 {
			actions = permitted
		}
	}
	action := rapid.SampledFrom(actions).Draw(t, "action")
	ctx, cancel := s.ctx()
	defer cancel()
	for attempt := 0; ; attempt++ {
		inst := &compute.Instance{UUID: uuid}
		if err := s.w.raw.Get(ctx, inst); err != nil {
			t.Fatal(err)
		}
		to, err := compute.CheckInstanceState(compute.Request{Instance: inst}, action)
		if err != nil {
			s.seen["lifecycle refused"]++
			t.Logf("%s of %s in %s refused: %v", action, uuid, inst.VMState, err)
			return
		}
		moves := inst.VMState == compute.VMShelvedOffloaded || to == compute.VMShelvedOffloaded
		if moves && len(inst.BlockDevices) > 0 {
			t.Logf("%s of %s with volumes: not modelled", action, uuid)
			return
		}
		entry := volattach.Transition{Table: compute.VMStateTableName, Entity: inst.Key(),
			From: string(inst.VMState), To: string(to), Event: string(action)}
		wasOffloaded := inst.VMState == compute.VMShelvedOffloaded
		if action == compute.ActionResize {
			inst.OldVMState = inst.VMState // upstream system_metadata['old_vm_state']
		}
		inst.VMState = to
		switch {
		case to == compute.VMShelvedOffloaded:
			inst.Host = ""
		case wasOffloaded:
			inst.Host = testHost
		}
		_, err = s.w.raw.Commit(ctx, volattach.Txn{Puts: []volattach.Record{inst}, History: []volattach.Transition{entry}})
		if errors.Is(err, volattach.ErrConflict) && attempt < 100 {
			continue // an operation changed the instance's index meanwhile
		}
		if err != nil {
			t.Fatal(err)
		}
		if wasOffloaded {
			s.w.driver.AddGuest(uuid, compute.PowerRunning)
		}
		s.seen["lifecycle "+string(action)]++
		return
	}
}

// faultSteps are the steps a fault may be injected at: the hypervisor's,
// the volume side's, the API's hand-off to the host, and the checkpoints.
var faultSteps = func() []string {
	steps := []string{
		fake.StepVolumeConnector, fake.StepConnectVolume, fake.StepAttachGuest, fake.StepDetachGuest,
		fake.StepDisconnectVolume, fake.StepReserve, fake.StepUnreserve, fake.StepBeginDetaching,
		fake.StepRollDetaching, fake.StepInitializeConnection, fake.StepTerminateConnection, fake.StepAttach,
		fake.StepDetach, fake.StepAttachmentCreate, fake.StepAttachmentComplete, fake.StepAttachmentDelete,
		"queue_put",
	}
	for _, table := range []*compute.StepTable{compute.AttachStepTable, compute.DetachStepTable} {
		for _, e := range table.Events() {
			steps = append(steps, fake.CommitStep(table.Name(), string(e)))
		}
	}
	return append(steps, fake.CommitStep(compute.VMStateTableName, string(compute.ActionAttachVolume)))
}()

// InjectFault makes the next call of a random step fail (a guest that
// keeps its disk, for the hypervisor's detach).
func (s *system) InjectFault(t *rapid.T) {
	step := rapid.SampledFrom(faultSteps).Draw(t, "fault")
	var err error
	if step == fake.StepDetachGuest {
		err = compute.ErrDeviceDetachFailed
	}
	s.w.faults.FailOnce(step, err)
	s.seen["fault injected"]++
}

// Crash starts an attach or detach and kills the compute process (API and
// agent) right after one of its checkpoints, then starts a new process.
// The operation is left half done for the new process, the reconciler
// and the actions that follow.
func (s *system) Crash(t *rapid.T) {
	cp := rapid.SampledFrom(crashPoints()).Draw(t, "crash point")
	want := freePair
	if cp.kind() == compute.OperationDetach {
		want = mappedPair
	}
	inst, v := s.pick(t, want, &cp.Offloaded)
	if cp.kind() == compute.OperationAttach {
		if staleDisk(s.read(), v.ID, inst) {
			t.Skip("stale guest disk (see Attach)")
		}
	}
	// The faults that lead the operation down to the crash point's row.
	faults, _, err := cp.scenario()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range faults {
		s.w.faults.FailOnce(f.step, f.err)
	}
	p := s.w.proc
	reached := p.hook.arm(cp)
	done := p.call(func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		if cp.kind() == compute.OperationDetach {
			return p.api.DetachVolume(ctx, compute.DetachRequest{InstanceUUID: inst, VolumeID: v.ID})
		}
		_, err := p.api.AttachVolume(ctx, compute.AttachRequest{InstanceUUID: inst, VolumeID: v.ID, SupportsMultiattach: true})
		return err
	})
	timer := time.NewTimer(2 * callTimeout)
	defer timer.Stop()
	select {
	case <-reached:
	case err := <-done:
		select {
		case <-reached:
		default:
			p.hook.disarm()
			s.seen["crash point not passed"]++
			t.Logf("%s of %s on %s ended (%v) without passing %s", cp.kind(), v.ID, inst, err, cp)
			return
		}
	case <-timer.C:
		s.dump(t, s.read())
		buf := make([]byte, 1<<22)
		t.Logf("goroutines:\n%s", buf[:runtime.Stack(buf, true)])
		t.Fatalf("%s of %s on %s neither ended nor reached %s", cp.kind(), v.ID, inst, cp)
	}
	s.seen["killed at a checkpoint"]++
	t.Logf("killed at %s (%s of %s on %s)", cp, cp.kind(), v.ID, inst)
	p.crash()
	s.w.restart()
}

// Kill kills the compute process wherever it is (often idle, sometimes
// resuming what an earlier crash left) and starts a new one.
func (s *system) Kill(t *rapid.T) {
	s.seen["killed anywhere"]++
	s.w.proc.crash()
	s.w.restart()
}

// Restart stops the compute process cleanly and starts a new one.
func (s *system) Restart(t *rapid.T) {
	s.seen["restarted"]++
	s.w.proc.stop()
	s.w.restart()
}

// Reconcile reconciles until nothing is left to do, then checks every
// invariant.
func (s *system) Reconcile(t *rapid.T) {
	ctx, cancel := s.ctx()
	defer cancel()
	if err := s.w.settle(ctx); err != nil {
		t.Fatal(err)
	}
	s.seen["reconciled"]++
	snap := s.read()
	for _, v := range snap.violations(true) {
		t.Error(v)
	}
	if t.Failed() {
		s.dump(t, snap)
	}
}

// dump logs the whole system, to explain a failure (run with -rapid.log
// to see it for the first failing run, not only the shrunk one).
func (s *system) dump(t *rapid.T, snap *snapshot) {
	for id, v := range snap.volumes {
		t.Logf("volume %s %s multi=%v exported=%v", id, v.Status, v.Multiattach, slices.Contains(snap.exports, id))
		for _, a := range snap.attachments[id] {
			t.Logf("  attachment %s %s inst=%s conn=%v", a.ID, a.AttachStatus, a.InstanceUUID, a.ConnectionInfo != nil)
		}
	}
	for _, m := range snap.mappings {
		t.Logf("mapping %s/%s dev=%s att=%s op=%s", m.VolumeID, m.InstanceUUID, m.DeviceName, m.AttachmentID, m.OperationID)
	}
	for _, op := range snap.operations {
		t.Logf("op %s %s %s/%s step=%s failed=%s err=%v", op.ID, op.Kind, op.VolumeID, op.InstanceUUID, op.Step, op.FailedStep, op.Error)
	}
	for _, h := range snap.history {
		t.Logf("history %s %s %s -%s-> %s", h.Table, h.Entity, h.From, h.Event, h.To)
	}
	ctx, cancel := s.ctx()
	defer cancel()
	f, err := s.w.proc.rec.Audit(ctx)
	t.Logf("audit now: %v %v", f, err)
}

// staleDisk reports whether the guest has a disk of the volume with no
// mapping of it: left by an attach rollback whose guest detach failed
// (upstream only logs that failure), until a reconciler removes it.
func staleDisk(s *snapshot, volumeID, instanceUUID string) bool {
	_, ok := s.guestDisk(instanceUUID, volumeID)
	return ok && s.mapping(volumeID, instanceUUID) == nil
}

// requireKnownError fails t unless err is one of the answers the API
// gives: an upstream exception (4xx or 5xx) or an injected fault.
func requireKnownError(t *rapid.T, err error) {
	var ce *compute.Error
	switch {
	case errors.As(err, &ce), errors.Is(err, fake.ErrInjected), compute.HTTPStatus(err) < 500:
	default:
		t.Fatalf("unexpected kind of error: %v", err)
	}
}

// attachedPair lists what is missing for the volume to be attached to the
// instance at device.
func attachedPair(s *snapshot, volumeID, instanceUUID, device string) []string {
	var out []string
	m := s.mapping(volumeID, instanceUUID)
	if m == nil {
		return []string{"there is no mapping"}
	}
	if m.DeviceName != device || m.OperationID != "" {
		out = append(out, fmt.Sprintf("the mapping is at %q with operation %q", m.DeviceName, m.OperationID))
	}
	found := false
	for _, a := range s.attached(volumeID) {
		found = found || (a.InstanceUUID == instanceUUID && a.ID == m.AttachmentID)
	}
	if !found {
		out = append(out, "the volume side has no attached attachment named by the mapping")
	}
	if inst := s.instances[instanceUUID]; inst != nil && inst.Host != "" {
		if d, ok := s.guestDisk(instanceUUID, volumeID); !ok || d.DeviceName != compute.StripDev(device) {
			out = append(out, fmt.Sprintf("the guest has no disk at %s", device))
		}
	}
	return out
}

// detachedPair lists what is left of the volume on the instance.
func detachedPair(s *snapshot, volumeID, instanceUUID string) []string {
	var out []string
	if s.mapping(volumeID, instanceUUID) != nil {
		out = append(out, "the mapping is still there")
	}
	for _, a := range s.activeAttachments(volumeID) {
		if a.InstanceUUID == instanceUUID {
			out = append(out, fmt.Sprintf("attachment %s is still %s", a.ID, a.AttachStatus))
		}
	}
	if _, ok := s.guestDisk(instanceUUID, volumeID); ok {
		out = append(out, "the guest still has the disk")
	}
	return out
}
