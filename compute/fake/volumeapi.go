package fake

import (
	"context"

	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/volume"
)

// Steps of VolumeAPI at which Faults may fail or hang: upstream's names of
// the volume API calls.
const (
	StepReserve              = "reserve"
	StepUnreserve            = "unreserve"
	StepBeginDetaching       = "begin_detaching"
	StepRollDetaching        = "roll_detaching"
	StepInitializeConnection = "initialize_connection"
	StepTerminateConnection  = "terminate_connection"
	StepAttach               = "attach"
	StepDetach               = "detach"
	StepAttachmentCreate     = "attachment_create"
	StepAttachmentComplete   = "attachment_complete"
	StepAttachmentDelete     = "attachment_delete"
	StepCreateVolume         = "create_volume"
	StepDeleteVolume         = "delete_volume"
)

// VolumeAPI wraps a compute.VolumeAPI (in tests: a real volume.Service) and
// consults Faults before every call that changes something, so a test can
// make any volume-side step of an attach or detach fail or hang. A failing
// step does not reach the wrapped API.
type VolumeAPI struct {
	compute.VolumeAPI
	Faults *Faults
}

var _ compute.VolumeAPI = (*VolumeAPI)(nil)

// Reserve fails at StepReserve.
func (v *VolumeAPI) Reserve(ctx context.Context, volumeID string) error {
	if err := v.Faults.Check(ctx, StepReserve); err != nil {
		return err
	}
	return v.VolumeAPI.Reserve(ctx, volumeID)
}

// Unreserve fails at StepUnreserve.
func (v *VolumeAPI) Unreserve(ctx context.Context, volumeID string) error {
	if err := v.Faults.Check(ctx, StepUnreserve); err != nil {
		return err
	}
	return v.VolumeAPI.Unreserve(ctx, volumeID)
}

// BeginDetaching fails at StepBeginDetaching.
func (v *VolumeAPI) BeginDetaching(ctx context.Context, volumeID string) error {
	if err := v.Faults.Check(ctx, StepBeginDetaching); err != nil {
		return err
	}
	return v.VolumeAPI.BeginDetaching(ctx, volumeID)
}

// RollDetaching fails at StepRollDetaching.
func (v *VolumeAPI) RollDetaching(ctx context.Context, volumeID string) error {
	if err := v.Faults.Check(ctx, StepRollDetaching); err != nil {
		return err
	}
	return v.VolumeAPI.RollDetaching(ctx, volumeID)
}

// InitializeConnection fails at StepInitializeConnection.
func (v *VolumeAPI) InitializeConnection(ctx context.Context, volumeID string, conn volume.Connector) (volume.ConnectionInfo, error) {
	if err := v.Faults.Check(ctx, StepInitializeConnection); err != nil {
		return volume.ConnectionInfo{}, err
	}
	return v.VolumeAPI.InitializeConnection(ctx, volumeID, conn)
}

// TerminateConnection fails at StepTerminateConnection.
func (v *VolumeAPI) TerminateConnection(ctx context.Context, volumeID string, conn volume.Connector) error {
	if err := v.Faults.Check(ctx, StepTerminateConnection); err != nil {
		return err
	}
	return v.VolumeAPI.TerminateConnection(ctx, volumeID, conn)
}

// Attach fails at StepAttach.
func (v *VolumeAPI) Attach(ctx context.Context, volumeID, instanceUUID, host, mountpoint, mode string) (*volume.Attachment, error) {
	if err := v.Faults.Check(ctx, StepAttach); err != nil {
		return nil, err
	}
	return v.VolumeAPI.Attach(ctx, volumeID, instanceUUID, host, mountpoint, mode)
}

// Detach fails at StepDetach.
func (v *VolumeAPI) Detach(ctx context.Context, volumeID, attachmentID string) error {
	if err := v.Faults.Check(ctx, StepDetach); err != nil {
		return err
	}
	return v.VolumeAPI.Detach(ctx, volumeID, attachmentID)
}

// AttachmentCreate fails at StepAttachmentCreate.
func (v *VolumeAPI) AttachmentCreate(ctx context.Context, volumeID, instanceUUID string, conn *volume.Connector, mode string) (*volume.Attachment, error) {
	if err := v.Faults.Check(ctx, StepAttachmentCreate); err != nil {
		return nil, err
	}
	return v.VolumeAPI.AttachmentCreate(ctx, volumeID, instanceUUID, conn, mode)
}

// AttachmentComplete fails at StepAttachmentComplete.
func (v *VolumeAPI) AttachmentComplete(ctx context.Context, attachmentID string) error {
	if err := v.Faults.Check(ctx, StepAttachmentComplete); err != nil {
		return err
	}
	return v.VolumeAPI.AttachmentComplete(ctx, attachmentID)
}

// AttachmentDelete fails at StepAttachmentDelete.
func (v *VolumeAPI) AttachmentDelete(ctx context.Context, attachmentID string) error {
	if err := v.Faults.Check(ctx, StepAttachmentDelete); err != nil {
		return err
	}
	return v.VolumeAPI.AttachmentDelete(ctx, attachmentID)
}

// CreateVolume fails at StepCreateVolume.
func (v *VolumeAPI) CreateVolume(ctx context.Context, spec volume.VolumeSpec) (*volume.Volume, error) {
	if err := v.Faults.Check(ctx, StepCreateVolume); err != nil {
		return nil, err
	}
	return v.VolumeAPI.CreateVolume(ctx, spec)
}

// DeleteVolume fails at StepDeleteVolume.
func (v *VolumeAPI) DeleteVolume(ctx context.Context, volumeID string) error {
	if err := v.Faults.Check(ctx, StepDeleteVolume); err != nil {
		return err
	}
	return v.VolumeAPI.DeleteVolume(ctx, volumeID)
}

var _ compute.VolumeChanges = (*VolumeAPI)(nil)

// ReserveChange fails at StepReserve (before anything is written, as a
// refused reserve); the wrapped API must offer changes as values, or the
// error matches volume.ErrNotComposable.
func (v *VolumeAPI) ReserveChange(ctx context.Context, volumeID string) (*volume.Change, error) {
	if err := v.Faults.Check(ctx, StepReserve); err != nil {
		return nil, err
	}
	vc, err := v.changes(volumeID, "reserve")
	if err != nil {
		return nil, err
	}
	return vc.ReserveChange(ctx, volumeID)
}

// BeginDetachingChange fails at StepBeginDetaching.
func (v *VolumeAPI) BeginDetachingChange(ctx context.Context, volumeID string) (*volume.Change, error) {
	if err := v.Faults.Check(ctx, StepBeginDetaching); err != nil {
		return nil, err
	}
	vc, err := v.changes(volumeID, "begin_detaching")
	if err != nil {
		return nil, err
	}
	return vc.BeginDetachingChange(ctx, volumeID)
}

// AttachChange fails at StepAttach.
func (v *VolumeAPI) AttachChange(ctx context.Context, volumeID, instanceUUID, host, mountpoint, mode string) (*volume.Change, error) {
	if err := v.Faults.Check(ctx, StepAttach); err != nil {
		return nil, err
	}
	vc, err := v.changes(volumeID, "attach")
	if err != nil {
		return nil, err
	}
	return vc.AttachChange(ctx, volumeID, instanceUUID, host, mountpoint, mode)
}

// PrepareInitializeConnection fails at StepInitializeConnection.
func (v *VolumeAPI) PrepareInitializeConnection(ctx context.Context, volumeID string, conn volume.Connector) (volume.ConnectionInfo, *volume.Change, error) {
	if err := v.Faults.Check(ctx, StepInitializeConnection); err != nil {
		return volume.ConnectionInfo{}, nil, err
	}
	vc, err := v.changes(volumeID, "initialize_connection")
	if err != nil {
		return volume.ConnectionInfo{}, nil, err
	}
	return vc.PrepareInitializeConnection(ctx, volumeID, conn)
}

// PrepareTerminateConnection fails at StepTerminateConnection.
func (v *VolumeAPI) PrepareTerminateConnection(ctx context.Context, volumeID string, conn volume.Connector) (*volume.Change, error) {
	if err := v.Faults.Check(ctx, StepTerminateConnection); err != nil {
		return nil, err
	}
	vc, err := v.changes(volumeID, "terminate_connection")
	if err != nil {
		return nil, err
	}
	return vc.PrepareTerminateConnection(ctx, volumeID, conn)
}

// PrepareDetach fails at StepDetach.
func (v *VolumeAPI) PrepareDetach(ctx context.Context, volumeID, attachmentID string) (*volume.Change, error) {
	if err := v.Faults.Check(ctx, StepDetach); err != nil {
		return nil, err
	}
	vc, err := v.changes(volumeID, "detach")
	if err != nil {
		return nil, err
	}
	return vc.PrepareDetach(ctx, volumeID, attachmentID)
}

// changes is the wrapped API's changes as values, or a NotComposableError.
func (v *VolumeAPI) changes(volumeID, op string) (compute.VolumeChanges, error) {
	vc, ok := v.VolumeAPI.(compute.VolumeChanges)
	if !ok {
		return nil, &volume.NotComposableError{VolumeID: volumeID, Op: op, Rule: "volume_side_shares_store"}
	}
	return vc, nil
}
