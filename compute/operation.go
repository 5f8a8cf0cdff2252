package compute

import (
	"fmt"
	"strings"
	"time"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/volume"
)

// OperationKind says what an operation does.
type OperationKind string

// Operation kinds.
const (
	OperationAttach OperationKind = "attach"
	OperationDetach OperationKind = "detach"
)

// Step is the point an operation has reached: a state of the
// compute.attach_operation or compute.detach_operation table.
type Step string

// Operation is one attach or detach of a volume on an instance, persisted
// as a checkpointed saga (DESIGN section 4): Step is checkpointed after
// every external side effect, so a host agent that stops half-way leaves a
// record another run resumes, forward or back, along the step table. The
// record is kept when the operation ends, as upstream keeps instance
// actions; its history entries say how it got there.
type Operation struct {
	volattach.Meta
	ID           string        `json:"id"`
	Kind         OperationKind `json:"kind"`
	InstanceUUID string        `json:"instance_uuid"`
	VolumeID     string        `json:"volume_id"`
	// Host is the compute host that runs the operation; empty for a
	// shelved_offloaded instance, whose operations the API completes itself
	// because no hypervisor holds the instance.
	Host string `json:"host,omitempty"`
	// Queued says the operation was handed to its host: from then on it
	// is its host's work item (volattach.Work) until it ends.
	Queued bool `json:"queued,omitempty"`
	Step   Step `json:"step"`
	// FailedStep is the step at which the forward path failed; it decides
	// which compensations the rollback runs.
	FailedStep Step `json:"failed_step,omitempty"`
	// Error is the failure that ended or is delaying the operation.
	Error *OperationError `json:"error,omitempty"`
	// Device is the guest device path the attach uses.
	Device string `json:"device,omitempty"`
	// Mode is the attach mode, "rw" or "ro".
	Mode string `json:"mode,omitempty"`
	// Connector is the host connector initialize_connection was called
	// with; terminate_connection needs the same one.
	Connector *volume.Connector `json:"connector,omitempty"`
	// ConnectionInfo is what initialize_connection returned.
	ConnectionInfo *volume.ConnectionInfo `json:"connection_info,omitempty"`
	// Admin and RequestID are the caller's, carried to the volume side.
	Admin     bool      `json:"admin,omitempty"`
	RequestID string    `json:"request_id,omitempty"`
	CreatedAt time.Time `json:"created_at,omitzero"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// OperationError is a failure as persisted: the upstream exception name,
// its HTTP status and the message.
type OperationError struct {
	Name    string `json:"name"`
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// Key returns the operation's store key.
func (o *Operation) Key() volattach.Key {
	return volattach.Key{Kind: volattach.KindOperation, ID: o.ID}
}

// WorkHost is the host whose agent runs the operation.
func (o *Operation) WorkHost() string { return o.Host }

// WorkPending reports whether the operation is its host's work: handed
// over and not ended.
func (o *Operation) WorkPending() bool { return o.Queued && o.Host != "" && !o.Done() }

var _ volattach.Work = (*Operation)(nil)

// Offloaded reports whether the operation is for a shelved_offloaded
// instance (no host, no hypervisor work).
func (o *Operation) Offloaded() bool { return o.Host == "" }

// table returns the step table of the operation's kind.
func (o *Operation) table() *StepTable {
	if o.Kind == OperationDetach {
		return DetachStepTable
	}
	return AttachStepTable
}

// Done reports whether the operation has reached a terminal step.
func (o *Operation) Done() bool { return o.table().IsTerminal(o.Step) }

// Succeeded reports whether the operation ended the way it was asked to.
func (o *Operation) Succeeded() bool {
	return o.Step == StepAttached || o.Step == StepDetached
}

// Validate checks a decoded operation: known kind, a step of its table
// (and a failed step, if any, of the same table), and the fields the step's
// code needs: stored bytes are input, so a record that passes must be one
// a runner can resume without finding something missing.
//
//   - A shelved_offloaded operation (no host) only takes the steps its
//     path has: an attach requested, converted, releasing_volume or
//     terminal; a detach requested or terminal. The others call the
//     hypervisor, which the API that runs it does not have.
//   - An attach at connection_initialized carries the connection_info and
//     the connector initialize_connection gave: the guest attach uses the
//     one, the rollback's terminate_connection the other.
func (o *Operation) Validate() error {
	if o.ID == "" || o.InstanceUUID == "" || o.VolumeID == "" {
		return fmt.Errorf("operation: record lacks id, instance or volume")
	}
	if o.Kind != OperationAttach && o.Kind != OperationDetach {
		return fmt.Errorf("operation %s: unknown kind %q", o.ID, o.Kind)
	}
	if _, err := o.table().ParseState(string(o.Step)); err != nil {
		return fmt.Errorf("operation %s: %w", o.ID, err)
	}
	if o.FailedStep != "" {
		if _, err := o.table().ParseState(string(o.FailedStep)); err != nil {
			return fmt.Errorf("operation %s: failed_step: %w", o.ID, err)
		}
	}
	if o.Offloaded() && !o.Done() && !offloadedSteps[o.Kind][o.Step] {
		return fmt.Errorf("operation %s: a %s of a shelved_offloaded instance never reaches step %s", o.ID, o.Kind, o.Step)
	}
	if o.Kind == OperationAttach && o.Step == StepConnectionInitialized && (o.ConnectionInfo == nil || o.Connector == nil) {
		return fmt.Errorf("operation %s: step %s without the connection_info and connector it needs", o.ID, o.Step)
	}
	return nil
}

// offloadedSteps are the steps, terminal ones aside, of the operations of a
// shelved_offloaded instance (runner attach and detach without a host).
var offloadedSteps = map[OperationKind]map[Step]bool{
	OperationAttach: {StepRequested: true, StepConverted: true, StepReleasingVolume: true},
	OperationDetach: {StepRequested: true},
}

// redacted returns a copy of o fit to hand out: the credentials of its
// connection_info masked (a running attach holds them between
// initialize_connection and the save on the mapping).
func (o *Operation) redacted() *Operation {
	c := *o
	c.ConnectionInfo = redactConnectionInfo(o.ConnectionInfo)
	return &c
}

// redactConnectionInfo returns a copy of info whose credentials read
// "***", or nil for nil.
func redactConnectionInfo(info *volume.ConnectionInfo) *volume.ConnectionInfo {
	if info == nil {
		return nil
	}
	c := *info
	c.Data = make(map[string]string, len(info.Data))
	for k, v := range info.Data {
		if credentialKey(k) {
			v = "***"
		}
		c.Data[k] = v
	}
	return &c
}

// credentialKey reports whether a connection_info data key holds a
// credential (auth_password, and any other *password or *secret key a
// backend adds; secret_uuid only names a libvirt secret).
func credentialKey(k string) bool {
	k = strings.ToLower(k)
	return k == volume.DataAuthPassword || strings.HasSuffix(k, "password") || strings.HasSuffix(k, "secret") || strings.HasSuffix(k, "_key")
}
