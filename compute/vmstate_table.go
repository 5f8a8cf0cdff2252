package compute

import (
	"github.com/volattach/volattach/fsm"
)

// VMStateTableName is the name of the vm_state table.
const VMStateTableName = "compute.vm_state"

// Action is an operation on an instance: an event of the compute.vm_state
// table (upstream nova/compute/instance_actions.py names).
type Action string

// The lifecycle operations of the vm_state table, and the two volume
// operations that leave vm_state unchanged.
const (
	ActionBuild         Action = "build"
	ActionStart         Action = "start"
	ActionStop          Action = "stop"
	ActionPause         Action = "pause"
	ActionUnpause       Action = "unpause"
	ActionSuspend       Action = "suspend"
	ActionResume        Action = "resume"
	ActionRescue        Action = "rescue"
	ActionUnrescue      Action = "unrescue"
	ActionResize        Action = "resize"
	ActionConfirmResize Action = "confirm_resize"
	ActionRevertResize  Action = "revert_resize"
	ActionShelve        Action = "shelve"
	ActionShelveOffload Action = "shelve_offload"
	ActionUnshelve      Action = "unshelve"
	ActionSoftDelete    Action = "soft_delete"
	ActionRestore       Action = "restore"
	ActionDelete        Action = "delete"
	ActionError         Action = "error"
	ActionAttachVolume  Action = "attach_volume"
	ActionDetachVolume  Action = "detach_volume"
)

// Request is the subject of the vm_state table: the instance an operation
// acts on and who asks. Guards read it and never change it.
type Request struct {
	Instance *Instance
	// Admin is the caller's context.is_admin: admins may act on locked
	// instances.
	Admin bool
	// Device is the device path requested by attach_volume ("" to let the
	// compute side choose).
	Device string
}

// Guards of the vm_state table, one per upstream rule.
var (
	// GuardNotLocked mirrors @check_instance_lock: a locked instance
	// refuses every operation unless the caller is an admin.
	GuardNotLocked = fsm.Guard[Request]{Name: "instance_not_locked_unless_admin", Check: func(r Request) error {
		if r.Instance.Locked && !r.Admin {
			return Raise(ErrInstanceIsLocked, "instance %s is locked", r.Instance.UUID)
		}
		return nil
	}}
	// GuardTaskStateNone mirrors @check_instance_state's default
	// task_state=(None,): no other task may be in progress.
	GuardTaskStateNone = fsm.Guard[Request]{Name: "task_state_none", Check: func(r Request) error {
		if r.Instance.TaskState != TaskNone {
			return invalidState(r.Instance, "task_state", string(r.Instance.TaskState))
		}
		return nil
	}}
	// GuardLaunched mirrors @check_instance_state's default
	// must_have_launched=True: the instance has launched_at set.
	GuardLaunched = fsm.Guard[Request]{Name: "instance_launched", Check: func(r Request) error {
		if !r.Instance.Launched() {
			return invalidState(r.Instance, "launched_at", "None")
		}
		return nil
	}}
	// GuardDevicePath mirrors API.attach_volume's
	// "if device and not block_device.match_device(device)": a requested
	// device path must match DevicePathPattern (InvalidDevicePath 400).
	GuardDevicePath = fsm.Guard[Request]{Name: "device_path_matches", Check: func(r Request) error {
		return ValidateDevicePath(r.Device)
	}}
	// GuardWasStopped chooses the stopped alternative of confirm_resize and
	// revert_resize: upstream keeps the vm_state before the resize in
	// system_metadata['old_vm_state'] and, when it was STOPPED, leaves the
	// guest powered off (nova/compute/manager.py _confirm_resize,
	// finish_revert_resize: power_on = old_vm_state != STOPPED).
	GuardWasStopped = fsm.Guard[Request]{Name: "old_vm_state_stopped", Check: func(r Request) error {
		if r.Instance.OldVMState != VMStopped {
			return invalidState(r.Instance, "old_vm_state", string(r.Instance.OldVMState))
		}
		return nil
	}}
)

// resizeEnd are the alternatives of confirm_resize and revert_resize:
// stopped when the instance was stopped before the resize, otherwise active.
var resizeEnd = []fsm.Alternative[VMState, Request]{{To: VMStopped, When: GuardWasStopped}, {To: VMActive}}

func invalidState(i *Instance, attr, state string) error {
	return Raise(ErrInstanceInvalidState, "instance %s in %s %s", i.UUID, attr, state)
}

// apiGuards are @check_instance_lock plus @check_instance_state's defaults,
// the guards of every user operation below unless its row says otherwise.
var apiGuards = []fsm.Guard[Request]{GuardNotLocked, GuardTaskStateNone, GuardLaunched}

// allBut lists every vm_state except the given ones.
func allBut(except ...VMState) []VMState {
	var out []VMState
next:
	for _, s := range VMStates {
		for _, e := range except {
			if s == e {
				continue next
			}
		}
		out = append(out, s)
	}
	return out
}

// The named state sets of the compute.vm_state table: its any-state rows
// apply from every vm_state of one, and the diagrams draw each such row once.
const (
	setNotDeleted         = "not_deleted"
	setNotDeletedNorSoft  = "not_deleted_nor_soft_deleted"
	setNotDeletedNorError = "not_deleted_nor_error"
	setVolumeAttach       = "volume_attach" // VolumeAttachVMStates
)

// VMStateTable is the compute.vm_state table. Upstream has no table in code:
// each API operation carries @check_instance_state naming the vm_states it
// accepts (nova/compute/api.py); the rows below carry exactly those lists,
// and the vm_state the operation ends in when it completes. deleted is
// terminal (a deleted instance is not found by the API); building is where
// every instance starts.
var VMStateTable = fsm.New(VMStateTableName, fsm.Definition[VMState, Action, Request]{
	States:   VMStates,
	Initial:  VMBuilding,
	Terminal: []VMState{VMDeleted},
	Sets: []fsm.StateSet[VMState]{
		{Name: setNotDeleted, States: allBut(VMDeleted)},
		{Name: setNotDeletedNorSoft, States: allBut(VMDeleted, VMSoftDeleted)},
		{Name: setNotDeletedNorError, States: allBut(VMDeleted, VMError)},
		{Name: setVolumeAttach, States: VolumeAttachVMStates},
	},
	Rows: []fsm.Row[VMState, Action, Request]{
		// The build finished (set by the compute host, which also sets
		// launched_at): no user gate.
		{Event: ActionBuild, From: []VMState{VMBuilding}, To: VMActive},
		// API.start: vm_state=[STOPPED].
		{Event: ActionStart, From: []VMState{VMStopped}, To: VMActive, Guards: apiGuards},
		// API.stop: vm_state=[ACTIVE, ERROR].
		{Event: ActionStop, From: []VMState{VMActive, VMError}, To: VMStopped, Guards: apiGuards},
		// API.pause: vm_state=[ACTIVE].
		{Event: ActionPause, From: []VMState{VMActive}, To: VMPaused, Guards: apiGuards},
		// API.unpause: vm_state=[PAUSED].
		{Event: ActionUnpause, From: []VMState{VMPaused}, To: VMActive, Guards: apiGuards},
		// API.suspend: vm_state=[ACTIVE].
		{Event: ActionSuspend, From: []VMState{VMActive}, To: VMSuspended, Guards: apiGuards},
		// API.resume: vm_state=[SUSPENDED].
		{Event: ActionResume, From: []VMState{VMSuspended}, To: VMActive, Guards: apiGuards},
		// API.rescue: vm_state=[ACTIVE, STOPPED, ERROR].
		{Event: ActionRescue, From: []VMState{VMActive, VMStopped, VMError}, To: VMRescued, Guards: apiGuards},
		// API.unrescue: vm_state=[RESCUED].
		{Event: ActionUnrescue, From: []VMState{VMRescued}, To: VMActive, Guards: apiGuards},
		// API.resize: vm_state=[ACTIVE, STOPPED]; the finished resize waits
		// in RESIZED for confirm or revert.
		{Event: ActionResize, From: []VMState{VMActive, VMStopped}, To: VMResized, Guards: apiGuards},
		// API.confirm_resize: vm_state=[RESIZED]; back to STOPPED when the
		// guest was powered off before the resize, otherwise ACTIVE.
		{Event: ActionConfirmResize, From: []VMState{VMResized}, Guards: apiGuards, Alternatives: resizeEnd},
		// API.revert_resize: vm_state=[RESIZED]; the same two ends.
		{Event: ActionRevertResize, From: []VMState{VMResized}, Guards: apiGuards, Alternatives: resizeEnd},
		// API.shelve: vm_state=[ACTIVE, STOPPED, PAUSED, SUSPENDED].
		{Event: ActionShelve, From: []VMState{VMActive, VMStopped, VMPaused, VMSuspended}, To: VMShelved, Guards: apiGuards},
		// API.shelve_offload: vm_state=[SHELVED].
		{Event: ActionShelveOffload, From: []VMState{VMShelved}, To: VMShelvedOffloaded, Guards: apiGuards},
		// API.unshelve: vm_state=[SHELVED, SHELVED_OFFLOADED].
		{Event: ActionUnshelve, From: []VMState{VMShelved, VMShelvedOffloaded}, To: VMActive, Guards: apiGuards},
		// API.soft_delete: vm_state=None (any), task_state=None (any),
		// must_have_launched=True.
		{Event: ActionSoftDelete, Set: setNotDeletedNorSoft, To: VMSoftDeleted, Guards: []fsm.Guard[Request]{GuardNotLocked, GuardLaunched}},
		// API.restore: vm_state=[SOFT_DELETED].
		{Event: ActionRestore, From: []VMState{VMSoftDeleted}, To: VMActive, Guards: apiGuards},
		// API.delete: vm_state=None, task_state=None, must_have_launched=False.
		{Event: ActionDelete, Set: setNotDeleted, To: VMDeleted, Guards: []fsm.Guard[Request]{GuardNotLocked}},
		// A failed operation puts the instance in ERROR (set by the system,
		// no user gate).
		{Event: ActionError, Set: setNotDeletedNorError, To: VMError},
		// API.attach_volume: the 7 vm_states, task_state None, launched, not
		// locked unless admin, then the device path rule; vm_state unchanged.
		{Event: ActionAttachVolume, Set: setVolumeAttach, Guards: []fsm.Guard[Request]{GuardNotLocked, GuardTaskStateNone, GuardLaunched, GuardDevicePath}},
		// API.detach_volume: the same 7 vm_states and defaults; unchanged.
		{Event: ActionDetachVolume, Set: setVolumeAttach, Guards: apiGuards},
	},
	// No row for the instance's vm_state: InstanceInvalidState (409).
	Refuse: func(state VMState, action Action) error {
		return Raise(ErrInstanceInvalidState, "instance in vm_state %s: cannot %s while the instance is in this state", state, action)
	},
})

// CheckInstanceState decides whether r.Instance accepts action, in
// upstream's decorator order: @check_instance_lock wraps
// @check_instance_state, so the lock is checked before the vm_state (a
// locked instance in a wrong vm_state is InstanceIsLocked, as upstream);
// then the row for the instance's vm_state and its guards. It returns the
// vm_state the action leads to, or an *fsm.RefusedError (errors.As) that
// also matches the upstream exception (errors.Is(err, ErrInstanceIsLocked)).
func CheckInstanceState(r Request, action Action) (VMState, error) {
	state := r.Instance.VMState
	if lockGuarded[action] {
		if err := GuardNotLocked.Check(r); err != nil {
			return state, &fsm.RefusedError{Table: VMStateTableName, State: string(state), Event: string(action), Rule: GuardNotLocked.Name, Err: err}
		}
	}
	return VMStateTable.Next(state, action, r)
}

// lockGuarded holds the actions whose rows carry GuardNotLocked: the
// operations upstream decorates with @check_instance_lock.
var lockGuarded = func() map[Action]bool {
	m := map[Action]bool{}
	for _, r := range VMStateTable.Rows() {
		for _, g := range r.Guards {
			if g.Name == GuardNotLocked.Name {
				m[r.Event] = true
			}
		}
	}
	return m
}()
