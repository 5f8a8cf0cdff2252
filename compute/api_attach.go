package compute

import (
	"context"
	"errors"
	"fmt"

	"github.com/sirupsen/logrus"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/volume"
)

// AttachVolume attaches an existing volume to an instance (upstream
// API.attach_volume, legacy flow). In order, as upstream checks them:
//
//  0. the request's fields, as upstream's API schema: tag, disk bus and
//     device type (ValidationError 400);
//  1. the instance exists (InstanceNotFound 404);
//  2. the compute.vm_state table's attach_volume row: not locked unless
//     admin (InstanceIsLocked 409), one of the 7 vm_states with task_state
//     None and launched (InstanceInvalidState 409), a requested device
//     matching the device pattern (InvalidDevicePath 400);
//  3. the volume exists (VolumeNotFound 404);
//  4. the volume is not already mapped to this instance, nor, unless
//     multiattach, to any instance (InvalidVolume 400); a mapping of this
//     instance whose attach is still running is joined instead, so a quick
//     retry of a timed-out attach never trips over its own mapping;
//  5. a shelved_offloaded instance takes neither a tag nor a multiattach
//     volume (400);
//  6. a device name is free on the bus (TooManyDiskDevices 403; upstream's
//     conductor reserves it on the compute host before anything else);
//  7. then check_attach_and_reserve_volume's checks: the availability
//     zones match when cross-AZ attach is disabled (InvalidVolume 400),
//     and a multiattach volume needs microversion 2.60 (400).
//
// Nothing is written before every gate passed. Then the mapping (with the
// device name) and the operation are created in one transaction that
// compares the instance's revision, so the gates hold at the moment the
// mapping appears and concurrent attaches get distinct names; the volume is
// reserved (a refusal destroys the mapping again, InvalidVolume 400); the
// operation is queued for the instance's host. The call then waits for the
// host's result and returns the attachment with the device the guest got,
// or, with req.Async, returns at once with the device reserved for it. A
// shelved_offloaded instance has no host: the mapping is recorded without a
// device and the attachment completed with no connector, in this call.
func (a *API) AttachVolume(ctx context.Context, req AttachRequest) (*VolumeAttachment, error) {
	if err := req.validate(); err != nil {
		return nil, err
	}
	ctx = volume.WithRequestID(ctx, req.RequestID)
	log := a.log.WithFields(logrus.Fields{"instance_uuid": shortID(req.InstanceUUID), "volume_id": shortID(req.VolumeID), "request_id": req.RequestID})
	inst, err := a.instance(ctx, req.InstanceUUID)
	if err != nil {
		return nil, err
	}
	if _, err := CheckInstanceState(Request{Instance: inst, Admin: req.Admin, Device: req.Device}, ActionAttachVolume); err != nil {
		return nil, err
	}
	vol, err := a.volume(ctx, req.VolumeID)
	if err != nil {
		return nil, err
	}
	var m *BlockDeviceMapping
	var op *Operation
	var reserve *volume.Change
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if inst, err = a.instance(ctx, req.InstanceUUID); err != nil {
				return nil, err
			}
			if _, err := CheckInstanceState(Request{Instance: inst, Admin: req.Admin, Device: req.Device}, ActionAttachVolume); err != nil {
				return nil, err
			}
		}
		joined, err := a.checkAlreadyAttached(ctx, inst, vol, req)
		if err != nil || joined != nil {
			return joined, err
		}
		if err := checkShelvedOffloaded(inst, vol, req); err != nil {
			return nil, err
		}
		m, op, err = a.newAttach(inst, vol, req)
		if err != nil {
			return nil, err
		}
		if err := a.checkAttachAndReserve(inst, vol, req); err != nil {
			return nil, err
		}
		if reserve, err = a.reserveChange(ctx, op); err != nil {
			return nil, err
		}
		err = a.createAttach(ctx, inst, m, op, reserve)
		if err == nil {
			break
		}
		if !errors.Is(err, volattach.ErrConflict) || attempt >= a.cfg.ConflictRetries {
			return nil, err
		}
	}
	log = log.WithField("operation", op.ID)
	a.cfg.Notifier.Notify(ctx, notification(a.cfg.Clock, "instance.volume_attach.start", op))
	if op.Offloaded() {
		// The attachment made on the way reserves the volume.
		if err := a.runLocally(ctx, op); err != nil {
			return nil, err
		}
		return a.finished(ctx, op, resultOf(op))
	}
	if reserve != nil {
		reserve.Committed(ctx)
	} else if err := a.cfg.Volumes.Reserve(ctx, req.VolumeID); err != nil {
		err = volumeError(err)
		if aerr := a.runner.abandon(ctx, op, nil, err); aerr != nil {
			log.WithError(aerr).Error("could not destroy the mapping of a refused attach")
		}
		return nil, err
	}
	if err := a.handOff(ctx, op, log); err != nil {
		return nil, err
	}
	if req.Async {
		v := viewOf(m)
		v.Operation = op.ID
		return v, nil
	}
	res, err := a.wait(ctx, op)
	if err != nil {
		return nil, err
	}
	return a.finished(ctx, op, res)
}

// checkAlreadyAttached is upstream _check_volume_already_attached (and the
// re-check reserve_block_device_name makes under the instance lock): a
// volume already mapped to this instance is refused, unless its attach is
// still running, which is then joined; a non-multiattach volume mapped to
// any instance is refused.
func (a *API) checkAlreadyAttached(ctx context.Context, inst *Instance, vol *volume.Volume, req AttachRequest) (*VolumeAttachment, error) {
	holders, err := a.volumeMappings(ctx, vol.ID)
	if err != nil {
		return nil, err
	}
	for _, holder := range holders {
		if holder != inst.UUID {
			continue
		}
		m, err := a.mapping(ctx, vol.ID, inst.UUID)
		if err != nil {
			return nil, err
		}
		if m != nil && m.OperationID != "" {
			if v, err := a.join(ctx, m, OperationAttach, req.Async); v != nil || err != nil {
				return v, err
			}
		}
		return nil, Raise(ErrInvalidVolume, "volume %s already attached", vol.ID)
	}
	if len(holders) > 0 && !vol.Multiattach {
		return nil, Raise(ErrInvalidVolume, "volume %s is already attached to instances: %v", vol.ID, holders)
	}
	return nil, nil
}

// join waits for (or, async, points at) the operation of kind running on
// m; nil, nil when m's operation is of another kind or already over.
func (a *API) join(ctx context.Context, m *BlockDeviceMapping, kind OperationKind, async bool) (*VolumeAttachment, error) {
	op, err := a.operation(ctx, m.OperationID)
	if err != nil {
		if errors.Is(err, volattach.ErrNotFound) {
			return nil, nil
		}
		return nil, err
	}
	if op.Kind != kind || op.Done() {
		return nil, nil
	}
	if async {
		return viewOf(m), nil
	}
	if op.Offloaded() {
		return nil, Raise(ErrInvalidVolume, "volume %s: operation %s in progress", m.VolumeID, op.ID)
	}
	res, err := a.wait(ctx, op)
	if err != nil {
		return nil, err
	}
	return a.finished(ctx, op, res)
}

// checkShelvedOffloaded holds upstream attach_volume's refusals for a
// shelved_offloaded instance, made before anything else is reserved.
func checkShelvedOffloaded(inst *Instance, vol *volume.Volume, req AttachRequest) error {
	if inst.VMState != VMShelvedOffloaded {
		return nil
	}
	// upstream: no compute manager to ask whether it supports tags.
	if req.Tag != "" {
		return Raise(ErrVolumeTaggedAttachToShelvedNotSupported, "tagged volume attachment is not supported for shelved-offloaded instances")
	}
	// upstream: no host to ask whether it supports multiattach.
	if vol.Multiattach {
		return Raise(ErrMultiattachToShelvedNotSupported, "attaching multiattach volumes is not supported for shelved-offloaded instances")
	}
	return nil
}

// checkAttachAndReserve holds upstream check_attach_and_reserve_volume's
// checks, in its order; upstream runs them after the device name is
// reserved (N15).
func (a *API) checkAttachAndReserve(inst *Instance, vol *volume.Volume, req AttachRequest) error {
	// upstream cinder.API.check_availability_zone, only when
	// [cinder] cross_az_attach is False.
	if a.cfg.CrossAZAttachDisabled && inst.AvailabilityZone != vol.AvailabilityZone {
		return Raise(ErrInvalidVolume, "instance %s and volume %s are not in the same availability_zone (%q, %q)", inst.UUID, vol.ID, inst.AvailabilityZone, vol.AvailabilityZone)
	}
	// multiattach needs 2.60.
	if vol.Multiattach && !req.SupportsMultiattach {
		return Raise(ErrMultiattachNotSupportedOldMicroversion, "multiattach volumes are only supported starting with compute API version 2.60")
	}
	return nil
}

// newAttach builds the mapping and the operation of an attach, choosing the
// device name on the bus (none for a shelved_offloaded instance, which gets
// one on unshelve, as upstream _create_volume_bdm_locally).
func (a *API) newAttach(inst *Instance, vol *volume.Volume, req AttachRequest) (*BlockDeviceMapping, *Operation, error) {
	now := a.cfg.Clock().UTC()
	deviceType := req.DeviceType
	if deviceType == "" {
		deviceType = DeviceTypeDisk
	}
	m := &BlockDeviceMapping{
		UUID: newUUID(), InstanceUUID: inst.UUID, VolumeID: vol.ID,
		SourceType: SourceVolume, DestinationType: DestinationVolume,
		DiskBus: req.DiskBus, DeviceType: deviceType, VolumeSize: vol.Size,
		Tag: req.Tag, DeleteOnTermination: req.DeleteOnTermination, CreatedAt: now,
	}
	op := &Operation{
		ID: newUUID(), Kind: OperationAttach, InstanceUUID: inst.UUID, VolumeID: vol.ID,
		Step: StepRequested, Mode: volume.ModeRW, Admin: req.Admin, RequestID: req.RequestID,
		CreatedAt: now, UpdatedAt: now,
	}
	if inst.VMState != VMShelvedOffloaded {
		m.DiskBus = BusForDevice(req.DiskBus, deviceType, a.cfg.DefaultDiskBus)
		device, err := a.cfg.Namer.Next(m.DiskBus, usedDevices(inst), req.Device)
		if err != nil {
			return nil, nil, err
		}
		m.DeviceName, op.Device, op.Host = device, device, inst.Host
	}
	m.OperationID = op.ID
	return m, op, nil
}

// reserveChange is the volume's reservation as a value for the attach's
// first commit, when the volume side offers one (nil otherwise, and for a
// shelved_offloaded instance, whose attachment reserves the volume). A
// refusal is the attach's answer, with nothing written.
func (a *API) reserveChange(ctx context.Context, op *Operation) (*volume.Change, error) {
	vc := changes(a.cfg.Volumes)
	if vc == nil || op.Offloaded() {
		return nil, nil
	}
	ch, err := vc.ReserveChange(ctx, op.VolumeID)
	switch {
	case errors.Is(err, volume.ErrNotComposable):
		return nil, nil // reserved by a call of its own
	case err != nil:
		return nil, volumeError(err)
	}
	return ch, nil
}

// createAttach writes the mapping, the operation and the instance's device
// index in one transaction compared on the instance's revision, with the
// vm_state row the attach fired (it leaves vm_state unchanged). With the
// volume's reservation as a value (reserve, may be nil) the same commit
// reserves the volume and hands the operation to its host: the attach's
// one write before the host takes it.
func (a *API) createAttach(ctx context.Context, inst *Instance, m *BlockDeviceMapping, op *Operation, reserve *volume.Change) error {
	if inst.BlockDevices == nil {
		inst.BlockDevices = map[string]string{}
	}
	inst.BlockDevices[m.VolumeID] = m.DeviceName
	txn := volattach.Txn{
		Puts: []volattach.Record{inst, m, op},
		History: []volattach.Transition{{
			Table: VMStateTableName, Entity: inst.Key(), From: string(inst.VMState), To: string(inst.VMState),
			Event: string(ActionAttachVolume), RequestID: op.RequestID, Operation: op.ID,
		}},
	}
	if reserve != nil {
		op.Queued = true
		txn.Merge(withOperation(reserve.Txn, op))
	}
	_, err := a.cfg.Store.Commit(ctx, txn)
	if err != nil {
		delete(inst.BlockDevices, m.VolumeID)
		op.Queued = false
	}
	return err
}

// withOperation tags a volume change's history entries with the request
// and operation they belong to.
func withOperation(txn volattach.Txn, op *Operation) volattach.Txn {
	for i := range txn.History {
		txn.History[i].Operation = op.ID
		if txn.History[i].RequestID == "" {
			txn.History[i].RequestID = op.RequestID
		}
	}
	return txn
}

// cancelQueued rolls back an operation that could not be queued: under the
// instance lock, and only if no host took it meanwhile (the queue's answer
// may have been lost after it stored the item).
func (a *API) cancelQueued(ctx context.Context, op *Operation, cause error) error {
	if a.cfg.Locker == nil {
		return nil
	}
	return volattach.WithLock(ctx, a.cfg.Locker, volattach.InstanceLock(op.InstanceUUID), a.log, func(ctx context.Context, lk volattach.Lock) error {
		if err := a.cfg.Store.Get(ctx, op); err != nil {
			return err
		}
		if op.Step != StepRequested {
			return nil // the host took it after all
		}
		cause = fmt.Errorf("queueing for host %s: %w", op.Host, cause)
		if op.Kind == OperationDetach {
			return a.runner.rollDetaching(ctx, op, lk.Fence(), cause)
		}
		return a.runner.rollback(ctx, op, lk.Fence(), cause)
	})
}

// finished turns an operation's result into the API's answer.
func (a *API) finished(ctx context.Context, op *Operation, res OperationResult) (*VolumeAttachment, error) {
	if err := res.Err(); err != nil {
		return nil, err
	}
	m, err := a.mapping(ctx, op.VolumeID, op.InstanceUUID)
	if err != nil {
		return nil, err
	}
	if m == nil {
		if op.Kind == OperationDetach {
			return &VolumeAttachment{ID: op.VolumeID, VolumeID: op.VolumeID, ServerID: op.InstanceUUID, Device: res.Device}, nil
		}
		return nil, notAttached(op.InstanceUUID, op.VolumeID)
	}
	return viewOf(m), nil
}
