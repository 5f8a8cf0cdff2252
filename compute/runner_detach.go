package compute

import (
	"context"
	"errors"
	"fmt"

	"github.com/volattach/volattach/volume"
)

// detach runs a detach operation (REFERENCE section 4, detach; upstream
// ComputeManager.detach_volume and DriverVolumeBlockDevice.detach). The API
// already ran begin_detaching.
func (x *run) detach(ctx context.Context) error {
	for !x.op.Done() {
		var err error
		switch x.op.Step {
		case StepRequested:
			if x.op.Offloaded() {
				err = x.detachVolume(ctx)
			} else {
				err = x.detachGuest(ctx)
			}
		case StepGuestDetached:
			err = x.terminateConnection(ctx)
		case StepConnectionTerminated:
			err = x.detachVolume(ctx)
		default:
			return fmt.Errorf("operation %s: detach cannot resume from step %s", x.op.ID, x.op.Step)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// detachGuest removes the disk from the guest and disconnects the volume on
// the host (driver_detach), unless another instance on the host still uses
// it (hostDiskInfo). A disk or a guest already gone counts as
// detached. Any other failure, a guest that never releases the disk above
// all, rolls the volume back to in-use with roll_detaching and keeps the
// mapping.
func (x *run) detachGuest(ctx context.Context) error {
	var err error
	if x.bdm.ConnectionInfo != nil {
		disk, derr := x.hostDiskInfo(ctx)
		if derr != nil {
			return x.stop(derr) // nothing done yet: the detach is resumed later
		}
		err = x.driver.DetachVolume(ctx, x.op.InstanceUUID, *x.bdm.ConnectionInfo, disk)
		if errors.Is(err, ErrInstanceNotFound) {
			x.log.Warn("detaching volume from unknown instance")
			err = nil
		}
	}
	if err != nil {
		if stopped(ctx, err) {
			return x.stop(err)
		}
		x.log.WithError(err).Warn("guest refused to detach volume; rolling back with roll_detaching")
		if rerr := x.volumes.RollDetaching(ctx, x.op.VolumeID); rerr != nil {
			return x.stop(volumeError(rerr))
		}
		if !errors.Is(err, ErrDeviceDetachFailed) {
			err = Raise(ErrDeviceDetachFailed, "device detach failed for %s: %w", x.diskInfo().DeviceName, err)
		}
		x.op.FailedStep = x.op.Step
		x.op.Error = operationError(err)
		x.advance(ctx, EventRollDetaching)
		return x.finish(ctx, false)
	}
	// No checkpoint of its own: from here the detach only goes forward,
	// and a run resumed before the next checkpoint detaches again a disk
	// already gone, which counts as detached. The next checkpoint records
	// both rows.
	x.advance(ctx, EventDetachGuest)
	return x.terminateConnection(ctx)
}

// terminateConnection revokes the host's access (terminate_connection with
// the connector saved on the mapping). The guest has released the disk, so
// the detach only goes forward: a failure is retried later.
func (x *run) terminateConnection(ctx context.Context) error {
	var held *volume.Change
	if x.bdm.Connector != nil {
		var err error
		if held, err = x.terminate(ctx, *x.bdm.Connector); err != nil {
			return x.stop(volumeError(err))
		}
	}
	x.advance(ctx, EventTerminateConnection)
	if err := x.checkpointHolding(ctx, held); err != nil {
		return x.stop(err)
	}
	return nil
}

// terminate calls terminate_connection; with the volume side as values its
// volume lock stays held (held) and the checkpoint that records the
// terminated connection releases it.
func (x *run) terminate(ctx context.Context, conn volume.Connector) (*volume.Change, error) {
	if vc := changes(x.volumes); vc != nil {
		held, err := vc.PrepareTerminateConnection(ctx, x.op.VolumeID, conn)
		if !errors.Is(err, volume.ErrNotComposable) {
			return held, err
		}
	}
	return nil, x.volumes.TerminateConnection(ctx, x.op.VolumeID, conn)
}

// detachVolume ends the attachment on the volume side (volume_api.detach;
// the volume's status is recomputed there; for a shelved_offloaded
// instance attachment_delete, then the volume's deletion when the mapping
// says delete_on_termination, as upstream _local_cleanup_bdm_volumes) and
// destroys the mapping.
func (x *run) detachVolume(ctx context.Context) error {
	if vc := changes(x.volumes); vc != nil && !x.op.Offloaded() && x.bdm.AttachmentID != "" {
		ch, err := x.prepareDetach(ctx, vc)
		switch {
		case errors.Is(err, volume.ErrVolumeAttachmentNotFound), errors.Is(err, volume.ErrNotComposable):
			// Nothing to detach as a value: the plain path below.
		case err != nil:
			return x.stop(volumeError(err))
		default:
			// The volume side's detach is the operation's final commit,
			// fenced by the volume lock it releases.
			x.advance(ctx, EventDetachVolume)
			return x.finishWith(ctx, true, ch, func(ctx context.Context) (*volume.Change, error) {
				return x.prepareDetach(ctx, vc)
			})
		}
	}
	if x.bdm.AttachmentID != "" {
		var err error
		if x.op.Offloaded() {
			err = x.volumes.AttachmentDelete(ctx, x.bdm.AttachmentID)
		} else {
			err = x.volumes.Detach(ctx, x.op.VolumeID, x.bdm.AttachmentID)
		}
		if err != nil && !errors.Is(err, volume.ErrVolumeAttachmentNotFound) {
			return x.stop(volumeError(err))
		}
	}
	if x.op.Offloaded() && x.bdm.DeleteOnTermination {
		if err := x.deleteOnTermination(ctx); err != nil {
			return err
		}
	}
	x.advance(ctx, EventDetachVolume)
	return x.finish(ctx, true)
}

// prepareDetach is the volume side's detach as a value for the
// operation's final commit.
func (x *run) prepareDetach(ctx context.Context, vc VolumeChanges) (*volume.Change, error) {
	return vc.PrepareDetach(ctx, x.op.VolumeID, x.bdm.AttachmentID)
}

// deleteOnTermination deletes the detached volume of a delete_on_termination
// mapping (upstream _local_cleanup_bdm_volumes: volume_api.delete). A
// volume already gone is fine (a resumed run deleted it); a refusal is
// logged and the detach ends, as upstream logs it; anything else (the
// volume side unreachable) is retried.
func (x *run) deleteOnTermination(ctx context.Context) error {
	err := x.volumes.DeleteVolume(ctx, x.op.VolumeID)
	switch {
	case err == nil, errors.Is(err, volume.ErrVolumeNotFound):
		return nil
	case stopped(ctx, err):
		return x.stop(err)
	case errors.Is(err, volume.ErrInvalid):
		x.log.WithError(err).Warn("delete_on_termination: the volume side refused to delete the detached volume")
		return nil
	}
	return x.stop(volumeError(err))
}
