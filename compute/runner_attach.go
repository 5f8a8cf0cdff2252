package compute

import (
	"context"
	"errors"
	"fmt"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/volume"
)

// attach runs an attach operation (REFERENCE section 4, steps 2 to 5).
func (x *run) attach(ctx context.Context) error {
	for !x.op.Done() {
		var err error
		switch x.op.Step {
		case StepRequested:
			err = x.convert(ctx)
		case StepConverted:
			if x.op.Offloaded() {
				err = x.attachOffloaded(ctx)
			} else {
				err = x.initializeConnection(ctx)
			}
		case StepConnectionInitialized:
			err = x.attachGuest(ctx)
		case StepConnectionSaved:
			err = x.attachVolume(ctx)
		case StepDetachingGuest:
			err = x.undoGuest(ctx)
		case StepTerminatingConnection:
			err = x.undoConnection(ctx)
		case StepReleasingVolume:
			err = x.releaseVolume(ctx)
		default:
			return fmt.Errorf("operation %s: attach cannot resume from step %s", x.op.ID, x.op.Step)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// forward handles the failure of a forward step: a run that cannot go on
// stops; anything else is the step's failure and rolls back.
func (x *run) forward(ctx context.Context, err error) error {
	if stopped(ctx, err) {
		return x.stop(err)
	}
	return x.fail(ctx, err)
}

// convert mirrors driver_block_device.convert_volume: a volume mapping
// attaches its existing volume; a blank mapping creates the volume first
// (and reserves it, as the API reserved the existing one); snapshot and
// image mappings need a volume API that creates from a source, which this
// one does not offer: NotSupported. For a shelved_offloaded instance the
// volume is reserved here with an attachment of its own and no connector
// (upstream check_attach_and_reserve_volume: attachment_create).
func (x *run) convert(ctx context.Context) error {
	switch x.bdm.SourceType {
	case SourceVolume:
		if !x.op.Offloaded() {
			// Nothing to create: the step has no side effect and is
			// checkpointed with the next one.
			x.advance(ctx, EventConvert)
			return nil
		}
		att, err := x.volumes.AttachmentCreate(ctx, x.op.VolumeID, x.op.InstanceUUID, nil, "")
		if err != nil {
			return x.forward(ctx, volumeError(err))
		}
		x.bdm.AttachmentID = att.ID
		x.advance(ctx, EventConvert)
		if err := x.checkpoint(ctx, []volattach.Record{x.bdm}, nil); err != nil {
			return x.stop(err)
		}
		return nil
	case SourceBlank:
		if err := x.createBlank(ctx); err != nil {
			return x.forward(ctx, err)
		}
		x.advance(ctx, EventConvert)
		if err := x.checkpoint(ctx, nil, nil); err != nil {
			return x.stop(err)
		}
		return nil
	}
	return x.fail(ctx, Raise(ErrNotSupported, "creating a volume from a %s is not supported by this volume API", x.bdm.SourceType))
}

// createBlank creates the mapping's empty volume (upstream
// DriverVolBlankBlockDevice: "<instance>-blank-vol") and reserves it. The
// volume's id was chosen with the mapping, so a resumed run finds the
// volume it created: available, it is reserved now; attaching, this run's
// predecessor reserved it already.
func (x *run) createBlank(ctx context.Context) error {
	v, err := x.volumes.GetVolume(ctx, x.op.VolumeID)
	switch {
	case errors.Is(err, volume.ErrVolumeNotFound):
		v, err = x.volumes.CreateVolume(ctx, volume.VolumeSpec{
			ID: x.op.VolumeID, Name: x.op.InstanceUUID + "-blank-vol", Size: x.bdm.VolumeSize,
		})
		if err != nil {
			return volumeError(err)
		}
	case err != nil:
		return volumeError(err)
	}
	if v.Status == volume.StatusAttaching {
		return nil
	}
	return volumeError(x.volumes.Reserve(ctx, x.op.VolumeID))
}

// initializeConnection gets the host's connector and the connection_info
// for it (DriverVolumeBlockDevice._legacy_volume_attach). When
// initialize_connection fails, terminate_connection is called with the
// same connector before the failure is handled, its own failure only
// logged (upstream nova/volume/cinder.py initialize_connection): a backend
// may have granted the host access before it failed. The rollback then
// unreserves.
func (x *run) initializeConnection(ctx context.Context) error {
	conn, err := x.driver.VolumeConnector(ctx)
	if err != nil {
		return x.forward(ctx, err)
	}
	multiattach, err := x.volumeMultiattach(ctx)
	if err != nil {
		return x.forward(ctx, err)
	}
	info, held, err := x.initialize(ctx, conn)
	if err != nil {
		if !stopped(ctx, err) {
			if terr := x.volumes.TerminateConnection(ctx, x.op.VolumeID, conn); terr != nil {
				x.log.WithError(terr).Warn("terminate_connection after a failed initialize_connection")
			}
		}
		return x.forward(ctx, volumeError(err))
	}
	info.Multiattach = multiattach
	// upstream: "if 'serial' not in connection_info: connection_info['serial'] = self.volume_id".
	if info.Serial == "" {
		info.Serial = x.op.VolumeID
	}
	x.op.Connector, x.op.ConnectionInfo = &conn, &info
	x.op.Mode = info.AccessMode()
	x.advance(ctx, EventInitializeConnection)
	if err := x.checkpointHolding(ctx, held); err != nil {
		return x.stop(err)
	}
	return nil
}

// initialize calls initialize_connection; with the volume side as values
// its volume lock stays held (held) and the checkpoint that records the
// connection releases it.
func (x *run) initialize(ctx context.Context, conn volume.Connector) (volume.ConnectionInfo, *volume.Change, error) {
	if vc := changes(x.volumes); vc != nil {
		info, held, err := vc.PrepareInitializeConnection(ctx, x.op.VolumeID, conn)
		if !errors.Is(err, volume.ErrNotComposable) {
			return info, held, err
		}
	}
	info, err := x.volumes.InitializeConnection(ctx, x.op.VolumeID, conn)
	return info, nil, err
}

// attachGuest connects the volume on the host and adds the disk to the
// guest (virt_driver.attach_volume), then saves connection_info and the
// volume size on the mapping before the volume turns in-use: detach needs
// them. The save is the checkpoint of the guest attach.
//
// From that save on, the mapping holds connection_info (with its
// credentials) and the operation record no longer does: a record kept for
// the retention period holds no secret it does not need.
func (x *run) attachGuest(ctx context.Context) error {
	info := x.op.ConnectionInfo
	if info == nil {
		// Validate refuses such a record; a run never leaves one.
		return x.fail(ctx, Raise(ErrInvalidConnectionInfo, "operation %s reached %s without connection_info", x.op.ID, x.op.Step))
	}
	disk, err := x.hostDiskInfo(ctx)
	if err != nil {
		return x.forward(ctx, err)
	}
	if err := x.driver.AttachVolume(ctx, x.op.InstanceUUID, *info, disk); err != nil {
		return x.forward(ctx, err)
	}
	x.advance(ctx, EventAttachGuest)
	bdm := *x.bdm
	bdm.ConnectionInfo, bdm.Connector = info, x.op.Connector
	if bdm.VolumeSize == 0 {
		if v, err := x.volumes.GetVolume(ctx, x.op.VolumeID); err == nil {
			bdm.VolumeSize = v.Size
		}
	}
	x.advance(ctx, EventSaveConnectionInfo)
	x.op.ConnectionInfo = nil
	if err := x.checkpoint(ctx, []volattach.Record{&bdm}, nil); err != nil {
		x.op.ConnectionInfo = info
		if stopped(ctx, err) {
			return x.stop(err)
		}
		// The save itself failed: undo it in memory and fail at
		// guest_attached, so the disk leaves the guest again. (Upstream
		// only unreserves here and leaves the disk and the connection.)
		x.op.Step = StepGuestAttached
		x.pending = x.pending[:len(x.pending)-1]
		return x.fail(ctx, err)
	}
	x.bdm = &bdm
	return nil
}

// attachVolume records the attachment on the volume side
// (volume_api.attach with mode). Once it succeeded the operation only goes
// forward: a failed final commit is retried, and the retried attach finds
// its attachment (upstream's idempotent re-attach).
func (x *run) attachVolume(ctx context.Context) error {
	if vc := changes(x.volumes); vc != nil {
		ch, err := x.attachChange(ctx, vc)
		switch {
		case errors.Is(err, volume.ErrNotComposable):
			// The backend runs an attach hook: the volume side commits.
		case err != nil:
			return x.forward(ctx, volumeError(err))
		default:
			// The volume's attach is the operation's final commit.
			x.bdm.AttachmentID = ch.Attachment.ID
			x.advance(ctx, EventAttachVolume)
			return x.finishWith(ctx, false, ch, func(ctx context.Context) (*volume.Change, error) {
				c, err := x.attachChange(ctx, vc)
				if err == nil {
					x.bdm.AttachmentID = c.Attachment.ID
				}
				return c, err
			})
		}
	}
	att, err := x.volumes.Attach(ctx, x.op.VolumeID, x.op.InstanceUUID, x.op.Host, x.bdm.DeviceName, x.op.Mode)
	if err != nil && !stopped(ctx, err) {
		// A resumed run whose earlier attempt attached before it could
		// record it: the volume side refuses a second attach of an in-use
		// volume ("already attached") before it would find this instance's
		// attachment, so look for it here.
		if mine, ferr := x.attachedAttachment(ctx); ferr == nil && mine != nil {
			att, err = mine, nil
		}
	}
	if err != nil {
		return x.forward(ctx, volumeError(err))
	}
	x.bdm.AttachmentID = att.ID
	x.advance(ctx, EventAttachVolume)
	return x.finish(ctx, false)
}

// attachChange is the volume side's attach as a value for this
// operation's final commit.
func (x *run) attachChange(ctx context.Context, vc VolumeChanges) (*volume.Change, error) {
	return vc.AttachChange(ctx, x.op.VolumeID, x.op.InstanceUUID, x.op.Host, x.bdm.DeviceName, x.op.Mode)
}

// attachedAttachment returns the volume's attached attachment for this
// instance, or nil.
func (x *run) attachedAttachment(ctx context.Context) (*volume.Attachment, error) {
	atts, err := x.volumes.Attachments(ctx, x.op.VolumeID)
	if err != nil {
		return nil, err
	}
	for _, a := range atts {
		if a.InstanceUUID == x.op.InstanceUUID && a.AttachStatus == volume.AttachAttached {
			return a, nil
		}
	}
	return nil, nil
}

// attachOffloaded completes the attachment without a connector for a
// shelved_offloaded instance (upstream _attach_volume_shelved_offloaded:
// attachment_complete): the volume shows in-use; nothing happens on any
// hypervisor, the host connects the volume on unshelve.
func (x *run) attachOffloaded(ctx context.Context) error {
	if err := x.volumes.AttachmentComplete(ctx, x.bdm.AttachmentID); err != nil {
		return x.forward(ctx, volumeError(err))
	}
	x.advance(ctx, EventAttachVolume)
	return x.finish(ctx, false)
}

// undoGuest detaches the disk from the guest during a rollback; as
// upstream, a failure is only logged and the rollback goes on.
func (x *run) undoGuest(ctx context.Context) error {
	info := x.op.ConnectionInfo
	if info == nil {
		info = x.bdm.ConnectionInfo // saved there at connection_saved
	}
	if info != nil {
		disk, err := x.hostDiskInfo(ctx)
		if err != nil {
			return x.stop(err)
		}
		if err := x.driver.DetachVolume(ctx, x.op.InstanceUUID, *info, disk); err != nil {
			if stopped(ctx, err) {
				return x.stop(err)
			}
			x.log.WithError(err).Warn("driver failed to detach volume during rollback")
		}
	}
	x.advance(ctx, EventDetachGuest)
	if err := x.checkpoint(ctx, nil, nil); err != nil {
		return x.stop(err)
	}
	return nil
}

// undoConnection terminates the connection during a rollback; it is
// retried until it succeeds, so no export is left behind.
func (x *run) undoConnection(ctx context.Context) error {
	if x.op.Connector != nil {
		if err := x.volumes.TerminateConnection(ctx, x.op.VolumeID, *x.op.Connector); err != nil {
			return x.stop(volumeError(err))
		}
	}
	x.advance(ctx, EventTerminateConnection)
	if err := x.checkpoint(ctx, nil, nil); err != nil {
		return x.stop(err)
	}
	return nil
}

// releaseVolume ends the rollback. On a host: when the volume-side attach
// failed (it may have left an attachment) the volume is detached from this
// instance, then unreserved (manager.attach_volume's handler:
// unreserve_volume). For a shelved_offloaded instance the attachment that
// reserved the volume is deleted. Then the mapping is destroyed
// (bdm.destroy()).
func (x *run) releaseVolume(ctx context.Context) error {
	switch {
	case x.op.Offloaded():
		if x.bdm.AttachmentID != "" {
			if err := x.volumes.AttachmentDelete(ctx, x.bdm.AttachmentID); err != nil && !errors.Is(err, volume.ErrNotFound) {
				return x.stop(volumeError(err))
			}
		}
	default:
		if x.op.FailedStep == StepConnectionSaved {
			if err := x.detachInstanceAttachments(ctx); err != nil {
				return x.stop(err)
			}
		}
		// A blank volume whose creation failed was never reserved.
		if x.bdm.SourceType == SourceVolume || x.op.FailedStep != StepRequested {
			if err := x.volumes.Unreserve(ctx, x.op.VolumeID); err != nil && !errors.Is(err, volume.ErrVolumeNotFound) {
				return x.stop(volumeError(err))
			}
		}
	}
	x.advance(ctx, EventUnreserve)
	return x.finish(ctx, true)
}

// detachInstanceAttachments detaches, on the volume side, every attachment
// of the volume to this instance ("Cinder-volume might have completed
// volume attach. So we should detach the volume. If the attach did not
// happen, the detach request will be ignored.").
func (x *run) detachInstanceAttachments(ctx context.Context) error {
	atts, err := x.volumes.Attachments(ctx, x.op.VolumeID)
	if err != nil {
		if errors.Is(err, volume.ErrVolumeNotFound) {
			return nil
		}
		return err
	}
	for _, a := range atts {
		if a.InstanceUUID != x.op.InstanceUUID {
			continue
		}
		if err := x.volumes.Detach(ctx, x.op.VolumeID, a.ID); err != nil && !errors.Is(err, volume.ErrVolumeAttachmentNotFound) {
			return volumeError(err)
		}
	}
	return nil
}
