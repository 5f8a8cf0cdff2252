package compute

import (
	"fmt"
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
	Step Step   `json:"step"`
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

// Validate checks a decoded operation: known kind, a step of its table.
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
	return nil
}
