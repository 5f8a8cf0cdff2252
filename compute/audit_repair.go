package compute

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/volume"
)

// Repair fixes one finding by the policy of docs/repair.md and says what it
// did. It first takes the locks of the entities involved, in the fixed
// order (the instance locks, sorted; the volume lock is taken inside each
// volume-side call), and re-audits them under those locks: a finding that
// is gone (repaired by another reconciler, or finished by its operation)
// is left alone and Repair returns "", nil. Records change only through
// the tables and one guarded transaction each; the hypervisor and the
// storage are touched only through their idempotent interfaces.
func (r *Reconciler) Repair(ctx context.Context, f Finding) (string, error) {
	switch f.Action {
	case RepairNone:
		return "", ErrNotRepairable
	case RepairResume:
		return r.resume(ctx, f)
	}
	instances := []string{}
	if f.InstanceUUID != "" {
		instances = append(instances, f.InstanceUUID)
	}
	scope := auditScope{volume: f.VolumeID, instance: f.InstanceUUID, exports: f.Kind == FindingExportOrphan}
	if f.InstanceUUID == "" && f.VolumeID != "" {
		// A volume-wide repair holds every instance that maps the volume,
		// so no host run on it starts meanwhile.
		st, err := r.load(ctx, scope)
		if err != nil {
			return "", err
		}
		instances = st.mappedInstances(f.VolumeID)
	}
	var did string
	err := r.withInstanceLocks(ctx, instances, func(ctx context.Context, fences []volattach.Fence) error {
		st, err := r.load(ctx, scope)
		if err != nil {
			return err
		}
		var cur *Finding
		for _, g := range classify(st) {
			if g.ID() == f.ID() && g.Action == f.Action {
				cur = &g
				break
			}
		}
		if cur == nil {
			return nil // resolved meanwhile
		}
		x := &repair{r: r, st: st, f: *cur, fences: fences, log: r.log.WithFields(logrus.Fields{
			"finding": string(f.Kind), "volume_id": f.VolumeID, "instance_uuid": f.InstanceUUID,
		})}
		did, err = x.run(ctx)
		return err
	})
	return did, err
}

// withInstanceLocks runs fn holding the instance locks of ids, taken in
// sorted order; fn's context ends if one of them is lost.
func (r *Reconciler) withInstanceLocks(ctx context.Context, ids []string, fn func(context.Context, []volattach.Fence) error) error {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	var fences []volattach.Fence
	// take holds ids[i:] inside the locks already taken: each WithLock's
	// context derives from the one before, so losing any lock ends fn's.
	var take func(ctx context.Context, i int) error
	take = func(ctx context.Context, i int) error {
		if i == len(ids) {
			return fn(ctx, fences)
		}
		return volattach.WithLock(ctx, r.cfg.Locker, volattach.InstanceLock(ids[i]), r.log, func(ctx context.Context, lk volattach.Lock) error {
			fences = append(fences, lk.Fence())
			return take(ctx, i+1)
		})
	}
	return take(ctx, 0)
}

// repair is one repair under its locks, on the state re-read there.
type repair struct {
	r      *Reconciler
	st     *auditState
	f      Finding
	fences []volattach.Fence
	log    logrus.FieldLogger
}

func (x *repair) run(ctx context.Context) (string, error) {
	switch x.f.Action {
	case RepairRekeyMapping:
		return x.rekeyMapping(ctx)
	case RepairDetachGuestDisk:
		return x.detachGuestDisk(ctx)
	case RepairLinkAttachment:
		return x.linkAttachment(ctx)
	case RepairRollBackMapping:
		return x.rollBackMapping(ctx)
	case RepairCompleteAttachment:
		if err := x.r.cfg.Volumes.AttachmentComplete(ctx, x.f.AttachmentID); err != nil {
			return "", volumeError(err)
		}
		return "attachment " + x.f.AttachmentID + " completed", nil
	case RepairDeleteAttachment:
		return x.deleteAttachment(ctx)
	case RepairReattachGuestDisk:
		return x.reattachGuestDisk(ctx)
	case RepairRecomputeStatus:
		return x.recomputeStatus(ctx)
	case RepairFailCreation:
		return x.failCreation(ctx)
	case RepairRemoveExport:
		if x.r.repairer == nil {
			return "", ErrNoVolumeRepairer
		}
		if err := x.r.repairer.RemoveStaleExport(ctx, volume.Export{Backend: x.f.Backend, VolumeID: x.f.VolumeID}); err != nil {
			return "", err
		}
		return "export removed from backend " + x.f.Backend, nil
	case RepairRebuildIndex:
		return x.rebuildIndex(ctx)
	}
	return "", fmt.Errorf("compute: no repair for action %q", x.f.Action)
}

// guestAccess says whether the instance's guest is this reconciler's to
// touch (onThisHost: its disks were read here), and whether what the guest
// holds is known (verifiable): read here, or there is no guest at all (no
// instance record, a shelved_offloaded instance, or no such guest on this
// host).
func (x *repair) guestAccess(instanceUUID string) (onThisHost, verifiable bool) {
	inst := x.st.instances[instanceUUID]
	if inst == nil || inst.Host == "" {
		return false, true
	}
	if inst.Host != x.r.host || x.r.driver == nil {
		return false, false
	}
	g, read := x.st.guests[instanceUUID]
	switch {
	case !read:
		return false, false // the guest's disks could not be read
	case g.missing:
		return false, true // no guest on this host: no disk to remove
	}
	return true, true
}

// connectionFor finds connection_info to detach the volume's disk with: the
// mapping's, an attachment's, an operation's, or one naming only the
// protocol of the volume's backend (what the hypervisor's detach and
// disconnect need: the serial finds the disk).
func (x *repair) connectionFor(volumeID, instanceUUID string) volume.ConnectionInfo {
	if m := x.st.mappings[pair{volumeID, instanceUUID}]; m != nil && m.ConnectionInfo != nil {
		return *m.ConnectionInfo
	}
	for _, a := range x.st.attachments[volumeID] {
		if a.InstanceUUID == instanceUUID && a.ConnectionInfo != nil {
			return *a.ConnectionInfo
		}
	}
	for _, op := range x.st.ops {
		if op.VolumeID == volumeID && op.InstanceUUID == instanceUUID && op.ConnectionInfo != nil {
			return *op.ConnectionInfo
		}
	}
	for p, m := range x.st.mappings {
		if p.volume == volumeID && m.ConnectionInfo != nil {
			return volume.ConnectionInfo{DriverVolumeType: m.ConnectionInfo.DriverVolumeType, Serial: volumeID,
				Data: map[string]string{volume.DataVolumeID: volumeID}}
		}
	}
	driver := volume.DriverFile
	if v := x.st.volumes[volumeID]; v != nil && v.Backend != "" {
		driver = v.Backend // the built-in backends are named after their protocol
	}
	return volume.ConnectionInfo{DriverVolumeType: driver, Serial: volumeID, Data: map[string]string{volume.DataVolumeID: volumeID}}
}

// detachDisk removes the volume's disk from the instance's guest, if it has
// one. A guest that refuses is an error: nothing else is changed.
func (x *repair) detachDisk(ctx context.Context, instanceUUID, volumeID string) (bool, error) {
	disk, _ := x.st.guestDisk(instanceUUID, volumeID)
	if disk == nil {
		return false, nil
	}
	info := x.connectionFor(volumeID, instanceUUID)
	d := DiskInfo{Serial: volumeID, DeviceName: disk.DeviceName, Bus: disk.Bus, DeviceType: DeviceTypeDisk}
	if err := x.r.driver.DetachVolume(ctx, instanceUUID, info, d); err != nil {
		return false, fmt.Errorf("detaching disk %s of volume %s from guest %s: %w", disk.DeviceName, volumeID, instanceUUID, err)
	}
	x.log.WithField("device", disk.DeviceName).Warn("reconciler: removed an unmapped disk from the guest")
	return true, nil
}

func (x *repair) detachGuestDisk(ctx context.Context) (string, error) {
	if onHost, _ := x.guestAccess(x.f.InstanceUUID); !onHost {
		return "", ErrNeedsHost
	}
	if _, err := x.detachDisk(ctx, x.f.InstanceUUID, x.f.VolumeID); err != nil {
		return "", err
	}
	return "disk " + x.f.Device + " detached from the guest", nil
}

// rekeyMapping moves a mapping from an older writer's key to its own, in
// one transaction: the old key is deleted as read, the new one must not
// exist yet.
func (x *repair) rekeyMapping(ctx context.Context) (string, error) {
	old := x.st.legacy[pair{x.f.VolumeID, x.f.InstanceUUID}]
	moved := old.canonical()
	if _, err := x.r.cfg.Store.Commit(ctx, volattach.Txn{Fences: x.fences, Deletes: []volattach.Record{old}, Puts: []volattach.Record{moved}}); err != nil {
		return "", err
	}
	return fmt.Sprintf("mapping moved from %q to %q", old.storedAt, moved.Key().ID), nil
}

// linkAttachment points the mapping at the instance's attached attachment.
func (x *repair) linkAttachment(ctx context.Context) (string, error) {
	m := *x.st.mappings[pair{x.f.VolumeID, x.f.InstanceUUID}]
	m.AttachmentID = x.f.AttachmentID
	if _, err := x.r.cfg.Store.Commit(ctx, volattach.Txn{Fences: x.fences, Puts: []volattach.Record{&m}}); err != nil {
		return "", err
	}
	return "mapping linked to attachment " + x.f.AttachmentID, nil
}

// rollBackMapping undoes a mapping the volume side does not back: the disk
// leaves the guest, the connection is terminated, and the mapping and its
// index entry are destroyed in one transaction. For an incomplete
// attachment, the attachment is deleted too.
func (x *repair) rollBackMapping(ctx context.Context) (string, error) {
	p := pair{x.f.VolumeID, x.f.InstanceUUID}
	m := x.st.mappings[p]
	onHost, verifiable := x.guestAccess(p.instance)
	if !verifiable {
		return "", ErrNeedsHost
	}
	did := []string{}
	if onHost {
		detached, err := x.detachDisk(ctx, p.instance, p.volume)
		if err != nil {
			return "", err
		}
		if detached {
			did = append(did, "disk detached from the guest")
		}
	}
	if m.Connector != nil && x.st.volumes[p.volume] != nil {
		if err := x.r.cfg.Volumes.TerminateConnection(ctx, p.volume, *m.Connector); err != nil && !errors.Is(err, volume.ErrVolumeNotFound) {
			return "", volumeError(err)
		}
		did = append(did, "connection terminated")
	}
	if x.f.Kind == FindingAttachmentIncomplete {
		if err := x.r.cfg.Volumes.AttachmentDelete(ctx, x.f.AttachmentID); err != nil && !errors.Is(err, volume.ErrNotFound) {
			return "", volumeError(err)
		}
		did = append(did, "attachment deleted")
	}
	txn := volattach.Txn{Fences: x.fences, Deletes: []volattach.Record{m}}
	if inst := x.st.instances[p.instance]; inst != nil {
		if _, ok := inst.BlockDevices[p.volume]; ok {
			fresh := *inst
			fresh.BlockDevices = maps.Clone(inst.BlockDevices)
			delete(fresh.BlockDevices, p.volume)
			txn.Puts = []volattach.Record{&fresh}
		}
	}
	if _, err := x.r.cfg.Store.Commit(ctx, txn); err != nil {
		return "", err
	}
	did = append(did, "mapping destroyed")
	return joinDid(did), nil
}

// deleteAttachment deletes an attachment no mapping names, after removing
// the volume's disk from the guest when the guest has it. A reserved
// attachment never connected a host and is deleted from anywhere; any
// other needs its guest verified.
func (x *repair) deleteAttachment(ctx context.Context) (string, error) {
	var did []string
	if mapped := x.st.mappings[pair{x.f.VolumeID, x.f.InstanceUUID}]; mapped == nil && x.f.InstanceUUID != "" {
		var status volume.AttachStatus
		for _, a := range x.st.attachments[x.f.VolumeID] {
			if a.ID == x.f.AttachmentID {
				status = a.AttachStatus
			}
		}
		onHost, verifiable := x.guestAccess(x.f.InstanceUUID)
		if status != volume.AttachReserved && !verifiable {
			return "", ErrNeedsHost
		}
		if onHost {
			detached, err := x.detachDisk(ctx, x.f.InstanceUUID, x.f.VolumeID)
			if err != nil {
				return "", err
			}
			if detached {
				did = append(did, "disk detached from the guest")
			}
		}
	}
	if err := x.r.cfg.Volumes.AttachmentDelete(ctx, x.f.AttachmentID); err != nil && !errors.Is(err, volume.ErrNotFound) {
		return "", volumeError(err)
	}
	return joinDid(append(did, "attachment "+x.f.AttachmentID+" deleted")), nil
}

// reattachGuestDisk gives the guest back the disk both sides' records say
// it has: the connection is initialised again for this host (the export
// re-created if it went), the disk added through the idempotent attach,
// and the fresh connection_info saved on the mapping.
func (x *repair) reattachGuestDisk(ctx context.Context) (string, error) {
	if onHost, _ := x.guestAccess(x.f.InstanceUUID); !onHost {
		return "", ErrNeedsHost
	}
	m := *x.st.mappings[pair{x.f.VolumeID, x.f.InstanceUUID}]
	conn, err := x.r.driver.VolumeConnector(ctx)
	if err != nil {
		return "", err
	}
	info, err := x.r.cfg.Volumes.InitializeConnection(ctx, m.VolumeID, conn)
	if err != nil {
		return "", volumeError(err)
	}
	if info.Serial == "" {
		info.Serial = m.VolumeID
	}
	disk := DiskInfo{Serial: m.VolumeID, DeviceName: StripDev(m.DeviceName), Bus: m.DiskBus, DeviceType: m.DeviceType,
		ReadOnly: info.AccessMode() == volume.ModeRO}
	if err := x.r.driver.AttachVolume(ctx, m.InstanceUUID, info, disk); err != nil {
		return "", err
	}
	m.ConnectionInfo, m.Connector = &info, &conn
	if _, err := x.r.cfg.Store.Commit(ctx, volattach.Txn{Fences: x.fences, Puts: []volattach.Record{&m}}); err != nil {
		return "", err
	}
	return "disk " + m.DeviceName + " attached to the guest again", nil
}

// recomputeStatus settles a volume's status through the volume side.
// Without a repairer, unreserve and roll_detaching still settle attaching
// and detaching volumes.
func (x *repair) recomputeStatus(ctx context.Context) (string, error) {
	v := x.st.volumes[x.f.VolumeID]
	if x.r.repairer != nil {
		if _, err := x.r.repairer.RecomputeStatus(ctx, v.ID); err != nil {
			return "", err
		}
	} else {
		switch v.Status {
		case volume.StatusAttaching:
			if err := x.r.cfg.Volumes.Unreserve(ctx, v.ID); err != nil {
				return "", volumeError(err)
			}
		case volume.StatusDetaching:
			if err := x.r.cfg.Volumes.RollDetaching(ctx, v.ID); err != nil {
				return "", volumeError(err)
			}
		default:
			return "", ErrNoVolumeRepairer
		}
	}
	after, err := x.r.cfg.Volumes.GetVolume(ctx, v.ID)
	if err != nil {
		return "", volumeError(err)
	}
	return fmt.Sprintf("status %s -> %s", v.Status, after.Status), nil
}

// rebuildIndex rewrites the instance's device index from its mappings, in
// one transaction that compares every mapping it read.
func (x *repair) rebuildIndex(ctx context.Context) (string, error) {
	inst := *x.st.instances[x.f.InstanceUUID]
	inst.BlockDevices = x.st.wantIndex(inst.UUID)
	txn := volattach.Txn{Fences: x.fences, Puts: []volattach.Record{&inst}}
	for _, v := range x.st.instanceMappings[inst.UUID] {
		txn.Reads = append(txn.Reads, x.st.mappings[pair{v, inst.UUID}])
	}
	if _, err := x.r.cfg.Store.Commit(ctx, txn); err != nil {
		return "", err
	}
	return fmt.Sprintf("device index rebuilt from %d mappings", len(inst.BlockDevices)), nil
}

// joinDid joins what a repair did into one phrase.
func joinDid(did []string) string { return strings.Join(did, ", ") }
