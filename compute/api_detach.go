package compute

import (
	"context"
	"errors"

	"github.com/sirupsen/logrus"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/volume"
)

// DetachVolume detaches a volume from an instance (upstream
// VolumeAttachmentController.delete and API.detach_volume). In order, as
// upstream checks them (the controller's lookups before the decorators of
// detach_volume):
//
//  1. the instance exists (InstanceNotFound 404);
//  2. the volume exists (VolumeNotFound 404) and is mapped to the instance
//     (VolumeBDMNotFound 404);
//  3. it is not the root device (VolumeBDMIsRoot 400);
//  4. the compute.vm_state table's detach_volume row: not locked unless
//     admin (InstanceIsLocked 409), one of the 7 vm_states with task_state
//     None and launched (InstanceInvalidState 409);
//  5. a detach of the volume already running is joined, an attach of it
//     still running refused (InvalidVolume 400);
//  6. the instance's compute service is up (ComputeServiceUnavailable, a
//     ServiceUnavailable, 409, naming no host as upstream's
//     check_instance_host);
//  7. begin_detaching on the volume side (InvalidVolume 400).
//
// Then the operation is recorded on the mapping and queued for the host,
// which detaches the disk from the guest, terminates the connection,
// detaches the volume and destroys the mapping; a guest that refuses rolls
// the volume back to in-use (DeviceDetachFailed). The call waits for the
// host's result unless req.Async. A shelved_offloaded instance has no host:
// the attachment is ended and the mapping destroyed in this call (and the
// volume deleted when the mapping says delete_on_termination).
func (a *API) DetachVolume(ctx context.Context, req DetachRequest) error {
	ctx = volume.WithRequestID(ctx, req.RequestID)
	log := a.log.WithFields(logrus.Fields{"instance_uuid": shortID(req.InstanceUUID), "volume_id": shortID(req.VolumeID), "request_id": req.RequestID})
	inst, err := a.instance(ctx, req.InstanceUUID)
	if err != nil {
		return err
	}
	if _, err := a.volume(ctx, req.VolumeID); err != nil {
		return err
	}
	m, err := a.mapping(ctx, req.VolumeID, req.InstanceUUID)
	if err != nil {
		return err
	}
	if m == nil {
		return notAttached(req.InstanceUUID, req.VolumeID)
	}
	// upstream VolumeAttachmentController.delete: "Cannot detach a root device volume".
	if m.IsRoot() {
		return Raise(ErrVolumeBDMIsRoot, "cannot detach a root device volume")
	}
	if _, err := CheckInstanceState(Request{Instance: inst, Admin: req.Admin}, ActionDetachVolume); err != nil {
		return err
	}
	if m.OperationID != "" {
		if v, err := a.join(ctx, m, OperationDetach, req.Async); v != nil || err != nil {
			return err
		}
		// The volume is still being attached (upstream: begin_detaching
		// refuses a volume that is not in-use): never run a detach beside
		// the attach, whose operation the mapping names.
		switch op, err := a.operation(ctx, m.OperationID); {
		case errors.Is(err, volattach.ErrNotFound):
		case err != nil:
			return err
		case op.Kind == OperationAttach && !op.Done():
			return Raise(ErrInvalidVolume, "volume %s: attach %s to instance %s still in progress", req.VolumeID, op.ID, req.InstanceUUID)
		}
	}
	offloaded := inst.VMState == VMShelvedOffloaded
	// upstream API._detach_volume: @check_instance_host(check_is_up=True),
	// which raises a bare ServiceUnavailable: "we do not want to leak
	// hostnames to end users".
	if !offloaded && a.cfg.Services != nil {
		up, err := a.cfg.Services.IsUp(ctx, inst.Host)
		if err != nil {
			return err
		}
		if !up {
			// upstream: "ServiceUnavailable's message does not contain the
			// host since that's sensitive information."
			return Raise(ErrComputeServiceUnavailable, "Service is unavailable at this time.")
		}
	}
	// upstream _detach_volume_shelved_offloaded skips begin_detaching for
	// a mapping attached through the attachments API, as ours are.
	// With the volume side as values, begin_detaching is part of the
	// commit that records the detach (and hands it to the host).
	var begin *volume.Change
	if vc := changes(a.cfg.Volumes); !offloaded && vc != nil {
		ch, err := vc.BeginDetachingChange(ctx, req.VolumeID)
		if err != nil && !errors.Is(err, volume.ErrNotComposable) {
			return volumeError(err)
		}
		begin = ch
	}
	if !offloaded && begin == nil {
		if err := a.cfg.Volumes.BeginDetaching(ctx, req.VolumeID); err != nil {
			return volumeError(err)
		}
	}
	now := a.cfg.Clock().UTC()
	op := &Operation{
		ID: newUUID(), Kind: OperationDetach, InstanceUUID: inst.UUID, VolumeID: req.VolumeID,
		Step: StepRequested, Device: m.DeviceName, Admin: req.Admin, RequestID: req.RequestID,
		CreatedAt: now, UpdatedAt: now,
	}
	if !offloaded {
		op.Host = inst.Host
	}
	m.OperationID = op.ID
	txn := volattach.Txn{Puts: []volattach.Record{m, op}}
	if begin != nil {
		op.Queued = true
		txn.Merge(withOperation(begin.Txn, op))
	}
	if _, err := a.cfg.Store.Commit(ctx, txn); err != nil {
		if !errors.Is(err, volattach.ErrConflict) {
			// The write may have applied (its reply was lost): decide from
			// what is stored, never roll back blindly.
			switch recorded, rerr := a.detachRecorded(ctx, op); {
			case rerr != nil:
				// Undecidable now: leave it to the reconciler, which queues
				// the operation if it exists and settles the volume if not.
				log.WithError(rerr).Error("detach request: outcome of its commit unknown; left to the reconciler")
				return err
			case recorded:
				err = nil
			}
		}
		if err != nil {
			// Another request changed the mapping since it was read, or
			// the commit did not apply: give the volume back its in-use
			// status and let the caller retry.
			if !offloaded && begin == nil {
				if rerr := a.cfg.Volumes.RollDetaching(ctx, req.VolumeID); rerr != nil {
					log.WithError(rerr).Error("roll_detaching after a failed detach request")
				}
			}
			if errors.Is(err, volattach.ErrConflict) {
				return Raise(ErrInvalidVolume, "volume %s: the attachment changed concurrently: %w", req.VolumeID, err)
			}
			return err
		}
	}
	if begin != nil {
		begin.Committed(ctx)
	}
	log = log.WithField("operation", op.ID)
	a.cfg.Notifier.Notify(ctx, notification(a.cfg.Clock, "instance.volume_detach.start", op))
	if offloaded {
		if err := a.runLocally(ctx, op); err != nil {
			return err
		}
		return resultOf(op).Err()
	}
	if err := a.handOff(ctx, op, log); err != nil {
		return err
	}
	if req.Async {
		return nil
	}
	res, err := a.wait(ctx, op)
	if err != nil {
		return err
	}
	return res.Err()
}

// detachRecorded reports whether the commit that records op (a new detach
// operation, with the mapping naming it) applied, read back from the store.
func (a *API) detachRecorded(ctx context.Context, op *Operation) (bool, error) {
	stored, err := a.operation(ctx, op.ID)
	switch {
	case err == nil:
		*op = *stored
		return true, nil
	case errors.Is(err, volattach.ErrNotFound):
		return false, nil
	}
	return false, err
}
