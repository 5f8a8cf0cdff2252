package compute_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/fsm"
)

func launchedInstance(state compute.VMState) *compute.Instance {
	return &compute.Instance{UUID: "6edad723-c62d-40d4-a29e-d9ac6a3247ee", VMState: state, LaunchedAt: time.Unix(1700000000, 0)}
}

func TestStateCounts(t *testing.T) {
	if got := len(compute.VMStates); got != 12 {
		t.Errorf("vm_states: %d, want 12", got)
	}
	if got := len(compute.TaskStates); got != 42 {
		t.Errorf("task_states: %d, want 42", got)
	}
	if got := len(compute.VolumeAttachVMStates); got != 7 {
		t.Errorf("attach vm_states: %d, want 7", got)
	}
	tables := compute.Tables()
	if len(tables) == 0 || tables[0].Describe().Name != "compute.vm_state" {
		t.Fatalf("Tables()[0] is not compute.vm_state")
	}
	if d := tables[0].Describe(); len(d.States) != 12 || d.Initial != "building" || !slices.Equal(d.Terminal, []string{"deleted"}) {
		t.Errorf("vm_state table: %d states, initial %q, terminal %v", len(d.States), d.Initial, d.Terminal)
	}
}

// upstreamFromStates is every operation's vm_state list from its
// @check_instance_state decorator in nova/compute/api.py (nil: vm_state=None,
// every state but deleted).
var upstreamFromStates = map[compute.Action][]compute.VMState{
	compute.ActionStart:         {compute.VMStopped},
	compute.ActionStop:          {compute.VMActive, compute.VMError},
	compute.ActionPause:         {compute.VMActive},
	compute.ActionUnpause:       {compute.VMPaused},
	compute.ActionSuspend:       {compute.VMActive},
	compute.ActionResume:        {compute.VMSuspended},
	compute.ActionRescue:        {compute.VMActive, compute.VMStopped, compute.VMError},
	compute.ActionUnrescue:      {compute.VMRescued},
	compute.ActionResize:        {compute.VMActive, compute.VMStopped},
	compute.ActionConfirmResize: {compute.VMResized},
	compute.ActionRevertResize:  {compute.VMResized},
	compute.ActionShelve:        {compute.VMActive, compute.VMStopped, compute.VMPaused, compute.VMSuspended},
	compute.ActionShelveOffload: {compute.VMShelved},
	compute.ActionUnshelve:      {compute.VMShelved, compute.VMShelvedOffloaded},
	compute.ActionRestore:       {compute.VMSoftDeleted},
	compute.ActionDelete:        nil,
	compute.ActionAttachVolume:  {compute.VMActive, compute.VMPaused, compute.VMStopped, compute.VMResized, compute.VMSoftDeleted, compute.VMShelved, compute.VMShelvedOffloaded},
	compute.ActionDetachVolume:  {compute.VMActive, compute.VMPaused, compute.VMStopped, compute.VMResized, compute.VMSoftDeleted, compute.VMShelved, compute.VMShelvedOffloaded},
}

func TestUpstreamFromStates(t *testing.T) {
	for action, from := range upstreamFromStates {
		for _, s := range compute.VMStates {
			want := slices.Contains(from, s) || (from == nil && s != compute.VMDeleted)
			_, err := compute.CheckInstanceState(compute.Request{Instance: launchedInstance(s)}, action)
			if got := err == nil; got != want {
				t.Errorf("%s from %s: allowed=%v, want %v (%v)", action, s, got, want, err)
			}
			if err != nil && (!errors.Is(err, compute.ErrInstanceInvalidState) || compute.HTTPStatus(err) != http.StatusConflict) {
				t.Errorf("%s from %s: refusal %v is not InstanceInvalidState 409", action, s, err)
			}
		}
	}
}

func TestVolumeActionsLeaveVMStateUnchanged(t *testing.T) {
	for _, s := range compute.VolumeAttachVMStates {
		for _, a := range []compute.Action{compute.ActionAttachVolume, compute.ActionDetachVolume} {
			to, err := compute.VMStateTable.Fire(context.Background(), s, a, compute.Request{Instance: launchedInstance(s)})
			if err != nil || to != s {
				t.Errorf("%s from %s: to %s, err %v", a, s, to, err)
			}
		}
	}
}

func TestGuards(t *testing.T) {
	locked := launchedInstance(compute.VMActive)
	locked.Locked = true
	busy := launchedInstance(compute.VMActive)
	busy.TaskState = compute.TaskRebooting
	neverLaunched := &compute.Instance{UUID: "u", VMState: compute.VMActive}
	ok := launchedInstance(compute.VMActive)
	tests := []struct {
		name   string
		guard  fsm.Guard[compute.Request]
		req    compute.Request
		refuse *compute.Exception
		status int
	}{
		{"unlocked", compute.GuardNotLocked, compute.Request{Instance: ok}, nil, 0},
		{"locked user", compute.GuardNotLocked, compute.Request{Instance: locked}, compute.ErrInstanceIsLocked, 409},
		{"locked admin", compute.GuardNotLocked, compute.Request{Instance: locked, Admin: true}, nil, 0},
		{"no task", compute.GuardTaskStateNone, compute.Request{Instance: ok}, nil, 0},
		{"task in progress", compute.GuardTaskStateNone, compute.Request{Instance: busy}, compute.ErrInstanceInvalidState, 409},
		{"launched", compute.GuardLaunched, compute.Request{Instance: ok}, nil, 0},
		{"never launched", compute.GuardLaunched, compute.Request{Instance: neverLaunched}, compute.ErrInstanceInvalidState, 409},
		{"no device", compute.GuardDevicePath, compute.Request{Instance: ok}, nil, 0},
		{"valid device", compute.GuardDevicePath, compute.Request{Instance: ok, Device: "/dev/vdc"}, nil, 0},
		{"invalid device", compute.GuardDevicePath, compute.Request{Instance: ok, Device: "vdc"}, compute.ErrInvalidDevicePath, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.guard.Check(tt.req)
			if tt.refuse == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.refuse) || compute.HTTPStatus(err) != tt.status {
				t.Fatalf("got %v (status %d), want %s %d", err, compute.HTTPStatus(err), tt.refuse.Name, tt.status)
			}
		})
	}
}

func TestRefusalNamesRule(t *testing.T) {
	busy := launchedInstance(compute.VMActive)
	busy.TaskState = compute.TaskMigrating
	_, err := compute.CheckInstanceState(compute.Request{Instance: busy}, compute.ActionAttachVolume)
	var refused *fsm.RefusedError
	if !errors.As(err, &refused) || refused.Rule != compute.GuardTaskStateNone.Name || refused.Table != "compute.vm_state" {
		t.Fatalf("refusal %v does not name task_state_none", err)
	}
	_, err = compute.CheckInstanceState(compute.Request{Instance: launchedInstance(compute.VMRescued)}, compute.ActionAttachVolume)
	if !errors.As(err, &refused) || refused.Rule != fsm.RuleNoTransition || !errors.Is(err, compute.ErrInstanceInvalidState) {
		t.Fatalf("attach in rescued: %v", err)
	}
}

// Upstream checks the lock before the vm_state, so a locked instance in a
// state the operation refuses is InstanceIsLocked.
func TestLockCheckedBeforeVMState(t *testing.T) {
	i := launchedInstance(compute.VMError)
	i.Locked = true
	_, err := compute.CheckInstanceState(compute.Request{Instance: i}, compute.ActionAttachVolume)
	if !errors.Is(err, compute.ErrInstanceIsLocked) {
		t.Fatalf("got %v, want InstanceIsLocked", err)
	}
	// The system's own error event has no lock gate.
	if _, err := compute.CheckInstanceState(compute.Request{Instance: launchedInstance(compute.VMActive)}, compute.ActionError); err != nil {
		t.Fatalf("error event refused: %v", err)
	}
}

func TestDevicePathPattern(t *testing.T) {
	if compute.DevicePathPattern != `(^/dev/x{0,1}[a-z]{0,1}d{0,1})([a-z]+)[0-9]*$` {
		t.Fatalf("pattern differs from upstream match_device")
	}
	tests := []struct {
		path           string
		prefix, letter string
		ok             bool
	}{
		{"/dev/vdb", "/dev/vd", "b", true},
		{"/dev/sdaa", "/dev/sd", "aa", true},
		{"/dev/xvdc", "/dev/xvd", "c", true},
		{"/dev/hda", "/dev/hd", "a", true},
		{"/dev/sda1", "/dev/sd", "a", true},
		{"/dev/vd1", "/dev/v", "d", true},
		{"vdb", "", "", false},
		{"/dev/", "", "", false},
		{"/dev/VDB", "", "", false},
		{"/dev/vdb/", "", "", false},
		// N7: Python's `$` matches before one final newline.
		{"/dev/vdb\n", "/dev/vd", "b", true},
		{"/dev/sdb1\n", "/dev/sd", "b", true},
		{"/dev/vdb\n\n", "", "", false},
		{"/dev/vdb\r\n", "", "", false},
		{"/dev/vd\nb", "", "", false},
		{"/dev/../etc/passwd", "", "", false},
		{"/dev/vd-b", "", "", false},
	}
	for _, tt := range tests {
		prefix, letter, ok := compute.MatchDevice(tt.path)
		if ok != tt.ok || prefix != tt.prefix || letter != tt.letter {
			t.Errorf("MatchDevice(%q) = %q %q %v, want %q %q %v", tt.path, prefix, letter, ok, tt.prefix, tt.letter, tt.ok)
		}
		err := compute.ValidateDevicePath(tt.path)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateDevicePath(%q) = %v", tt.path, err)
		}
	}
	if err := compute.ValidateDevicePath(""); err != nil {
		t.Errorf("empty device (let the compute side choose) refused: %v", err)
	}
}

func TestInstanceValidate(t *testing.T) {
	good := launchedInstance(compute.VMActive)
	if err := good.Validate(); err != nil {
		t.Fatalf("valid instance: %v", err)
	}
	bad := launchedInstance("hibernating")
	if err := bad.Validate(); !errors.Is(err, fsm.ErrUnknownState) {
		t.Fatalf("unknown vm_state: %v", err)
	}
	badTask := launchedInstance(compute.VMActive)
	badTask.TaskState = "dreaming"
	if err := badTask.Validate(); err == nil {
		t.Fatalf("unknown task_state accepted")
	}
}

func TestExceptionHierarchy(t *testing.T) {
	err := compute.Raise(compute.ErrInstanceIsLocked, "instance %s is locked", "x")
	for _, class := range []*compute.Exception{compute.ErrInstanceIsLocked, compute.ErrInstanceInvalidState, compute.ErrInvalid} {
		if !errors.Is(err, class) {
			t.Errorf("InstanceIsLocked does not match %s", class.Name)
		}
	}
	if errors.Is(err, compute.ErrNotFound) {
		t.Errorf("InstanceIsLocked matches NotFound")
	}
	cause := errors.New("volume side refused")
	wrapped := compute.Raise(compute.ErrInvalidVolume, "reserve: %w", cause)
	if !errors.Is(wrapped, cause) || compute.HTTPStatus(wrapped) != 400 {
		t.Errorf("InvalidVolume does not wrap its cause: %v", wrapped)
	}
	statuses := map[*compute.Exception]int{
		compute.ErrInstanceInvalidState: 409, compute.ErrInstanceIsLocked: 409,
		compute.ErrInvalidDevicePath: 400, compute.ErrDevicePathInUse: 409,
		compute.ErrTooManyDiskDevices: 403, compute.ErrInvalidVolume: 400,
		compute.ErrInstanceNotFound: 404, compute.ErrVolumeNotFound: 404,
		compute.ErrNotSupported: 400, compute.ErrComputeServiceUnavailable: 409,
	}
	for class, want := range statuses {
		if got := compute.HTTPStatus(compute.Raise(class, "x")); got != want {
			t.Errorf("%s: status %d, want %d", class.Name, got, want)
		}
	}
	if got := compute.HTTPStatus(errors.New("plain")); got != 500 {
		t.Errorf("plain error: %d", got)
	}
}

func genRequest(t *rapid.T) compute.Request {
	i := &compute.Instance{
		UUID:      "i",
		VMState:   rapid.SampledFrom(compute.VMStates).Draw(t, "vm_state"),
		TaskState: rapid.SampledFrom(append([]compute.TaskState{compute.TaskNone}, compute.TaskStates...)).Draw(t, "task_state"),
		Locked:    rapid.Bool().Draw(t, "locked"),
	}
	if rapid.Bool().Draw(t, "launched") {
		i.LaunchedAt = time.Unix(1700000000, 0)
	}
	return compute.Request{Instance: i, Admin: rapid.Bool().Draw(t, "admin")}
}

func TestPropertyVolumePermission(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		r := genRequest(t)
		action := rapid.SampledFrom([]compute.Action{compute.ActionAttachVolume, compute.ActionDetachVolume}).Draw(t, "action")
		_, err := compute.CheckInstanceState(r, action)
		i := r.Instance
		// Attach/detach is permitted exactly when vm_state is one of the
		// upstream 7, task_state is None, the instance was launched, and it
		// is not locked unless the caller is an admin.
		want := slices.Contains(compute.VolumeAttachVMStates, i.VMState) && i.TaskState == compute.TaskNone && i.Launched() && (!i.Locked || r.Admin)
		if (err == nil) != want {
			t.Fatalf("%s on %+v admin=%v: err %v, want permitted=%v", action, *i, r.Admin, err, want)
		}
	})
}

func TestPropertyRandomEventsMoveAlongRows(t *testing.T) {
	actions := compute.VMStateTable.Events()
	rapid.Check(t, func(t *rapid.T) {
		state := compute.VMStateTable.Initial()
		for step := range rapid.IntRange(1, 40).Draw(t, "steps") {
			r := genRequest(t)
			r.Instance.VMState = state
			action := rapid.SampledFrom(actions).Draw(t, "action")
			next, err := compute.VMStateTable.Fire(context.Background(), state, action, r)
			row, hasRow := compute.VMStateTable.Row(state, action)
			// Every accepted event follows a row from the current state to
			// the row's target (unchanged for an empty target), and every
			// refused event leaves the state unchanged and names its rule.
			if err == nil {
				if !hasRow || !slices.Contains(row.Targets(state), next) {
					t.Fatalf("step %d: %s from %s went to %s without a row", step, action, state, next)
				}
			} else {
				var refused *fsm.RefusedError
				if next != state || !errors.As(err, &refused) || refused.Rule == "" {
					t.Fatalf("step %d: refused %s from %s moved to %s or named no rule: %v", step, action, state, next, err)
				}
			}
			state = next
		}
	})
}

func TestResizeEndsWhereTheInstanceWas(t *testing.T) {
	for _, action := range []compute.Action{compute.ActionConfirmResize, compute.ActionRevertResize} {
		for old, want := range map[compute.VMState]compute.VMState{
			compute.VMStopped: compute.VMStopped, compute.VMActive: compute.VMActive, "": compute.VMActive,
		} {
			inst := launchedInstance(compute.VMResized)
			inst.OldVMState = old
			c, err := compute.VMStateTable.Choose(compute.VMResized, action, compute.Request{Instance: inst})
			if err != nil || c.To != want {
				t.Errorf("%s after a resize from %q: (%+v, %v), want %s", action, old, c.To, err, want)
			}
		}
	}
}
