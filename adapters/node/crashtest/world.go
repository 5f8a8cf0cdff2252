// Package crashtest holds the invariants a volattach deployment must hold
// once everything is reconciled, judged from the records in etcd, every
// instance's live domain XML in libvirt and the storage exports (ReadWorld,
// World.Violations). Its own tests SIGKILL a real host agent process in
// the middle of an attach and check them after a new agent took over; the
// chaos tests (adapters/chaos) check them after partitions, kills and
// pauses of a multi-host deployment.
package crashtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/adapters/node"
	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/fsm"
	"github.com/volattach/volattach/volume"
)

// World is what the invariants judge once everything is reconciled: the
// records in etcd, every instance's live domain XML in libvirt, and the
// storage exports. (compute/invariants_test.go states the same invariants
// over the fake hypervisor, for every moment of the in-process tests.)
type World struct {
	volumes     map[string]*volume.Volume
	attachments map[string][]*volume.Attachment // by volume
	instances   map[string]*compute.Instance
	mappings    []*compute.BlockDeviceMapping
	operations  []*compute.Operation
	history     []volattach.Transition
	// live holds each instance's disks as its running domain has them:
	// serial -> target device.
	live    map[string][]liveDisk
	exports []volume.Export
}

type liveDisk struct{ serial, dev string }

// ReadWorld reads the world through n (any node sharing the test's etcd
// prefix and backends) and the libvirt adapter of the instances' host.
func ReadWorld(ctx context.Context, n *node.Node) (*World, error) {
	w := &World{volumes: map[string]*volume.Volume{}, attachments: map[string][]*volume.Attachment{},
		instances: map[string]*compute.Instance{}, live: map[string][]liveDisk{}}
	store := n.Store()
	list := func(kind volattach.Kind, each func(id string) error) error {
		ids, err := store.List(ctx, kind, "", "", 0)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if err := each(id); err != nil {
				return err
			}
		}
		return nil
	}
	err := errors.Join(
		list(volattach.KindVolume, func(id string) error {
			v := &volume.Volume{ID: id}
			w.volumes[id] = v
			return store.Get(ctx, v)
		}),
		list(volattach.KindAttachment, func(id string) error {
			a := &volume.Attachment{ID: id}
			if err := store.Get(ctx, a); err != nil {
				return err
			}
			w.attachments[a.VolumeID] = append(w.attachments[a.VolumeID], a)
			return nil
		}),
		list(volattach.KindInstance, func(id string) error {
			i := &compute.Instance{UUID: id}
			w.instances[id] = i
			return store.Get(ctx, i)
		}),
		list(volattach.KindMapping, func(id string) error {
			volumeID, instanceUUID, _ := compute.ParseMappingID(id)
			m := &compute.BlockDeviceMapping{VolumeID: volumeID, InstanceUUID: instanceUUID}
			w.mappings = append(w.mappings, m)
			return store.Get(ctx, m)
		}),
		list(volattach.KindOperation, func(id string) error {
			op := &compute.Operation{ID: id}
			w.operations = append(w.operations, op)
			return store.Get(ctx, op)
		}),
	)
	if err != nil {
		return nil, err
	}
	if w.history, err = store.HistorySince(ctx, 1); err != nil {
		return nil, err
	}
	for id, inst := range w.instances {
		if inst.Host == "" {
			continue
		}
		disks, err := n.Libvirt().GuestDisks(ctx, id, true)
		if err != nil {
			return nil, fmt.Errorf("live disks of %s: %w", id, err)
		}
		for _, d := range disks {
			if d.Serial != "" && d.Target != nil {
				w.live[id] = append(w.live[id], liveDisk{serial: d.Serial, dev: d.Target.Dev})
			}
		}
	}
	if w.exports, _, err = n.Volumes().Exports(ctx); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *World) mapping(volumeID, instanceUUID string) *compute.BlockDeviceMapping {
	for _, m := range w.mappings {
		if m.VolumeID == volumeID && m.InstanceUUID == instanceUUID {
			return m
		}
	}
	return nil
}

// active: an attachment that still holds its volume (not detached or
// deleted, not in an error_ status, as volume.DeriveStatus counts them).
func active(a *volume.Attachment) bool {
	switch a.AttachStatus {
	case volume.AttachDetached, volume.AttachDeleted:
		return false
	}
	return !strings.HasPrefix(string(a.AttachStatus), "error_")
}

// Violations returns every invariant the world breaks, one sentence each.
func (w *World) Violations() []string {
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	for id, v := range w.volumes {
		var live, attached []*volume.Attachment
		for _, a := range w.attachments[id] {
			if active(a) {
				live = append(live, a)
			}
			if a.AttachStatus == volume.AttachAttached {
				attached = append(attached, a)
			}
		}
		// A volume is in-use exactly when it has an attached, non-error
		// attachment, and available exactly when it has no active one, but
		// for a volume in error (a failed creation, or one the reconciler
		// found left in creating), which has no active one either.
		free := v.Status == volume.StatusAvailable || v.Status == volume.StatusError
		if (v.Status == volume.StatusInUse) != (len(attached) > 0) || free != (len(live) == 0) {
			add("volume %s is %s with %d active and %d attached attachments", id, v.Status, len(live), len(attached))
		}
		// A non-multiattach volume never has two active attachments.
		if !v.Multiattach && len(live) > 1 {
			add("volume %s is not multiattach but has %d active attachments", id, len(live))
		}
		// After reconciling nothing is attaching, detaching or reserved.
		if v.Status == volume.StatusAttaching || v.Status == volume.StatusDetaching || v.Status == volume.StatusReserved {
			add("volume %s stuck in %s", id, v.Status)
		}
		for _, a := range attached {
			// Every attached attachment has a mapping with
			// connection_info, and the guest really has that disk.
			m := w.mapping(id, a.InstanceUUID)
			switch {
			case m == nil || m.AttachmentID != a.ID:
				add("attachment %s of %s to %s is attached but no mapping names it", a.ID, id, a.InstanceUUID)
			case m.ConnectionInfo == nil:
				add("mapping %s/%s of an attached volume has no connection_info", id, a.InstanceUUID)
			case !slices.Contains(w.live[a.InstanceUUID], liveDisk{id, compute.StripDev(m.DeviceName)}):
				add("the live guest %s has no disk %s at %s: %v", a.InstanceUUID, id, m.DeviceName, w.live[a.InstanceUUID])
			}
		}
		// No export of a volume nothing uses.
		for _, e := range w.exports {
			if e.VolumeID == id && len(live) == 0 {
				add("volume %s (%s) is exported on %s with no active attachment", id, v.Status, e.Backend)
			}
		}
	}
	for uuid, disks := range w.live {
		seen := map[string]bool{}
		for _, d := range disks {
			// Every guest disk that came from a volume has a mapping.
			if _, known := w.volumes[d.serial]; known && w.mapping(d.serial, uuid) == nil {
				add("the live guest %s has a disk of volume %s at %s with no mapping", uuid, d.serial, d.dev)
			}
			// No device name is used twice on one instance.
			if seen[d.dev] {
				add("the live guest %s uses %s twice", uuid, d.dev)
			}
			seen[d.dev] = true
		}
	}
	devices := map[string]bool{}
	for _, m := range w.mappings {
		if key := m.InstanceUUID + " " + m.DeviceName; m.DeviceName != "" && devices[key] {
			add("instance %s has two mappings at %s", m.InstanceUUID, m.DeviceName)
		} else {
			devices[key] = true
		}
		if m.OperationID != "" {
			add("mapping %s/%s still names operation %s", m.VolumeID, m.InstanceUUID, m.OperationID)
		}
	}
	// After reconciling every operation is completed or fully undone.
	for _, op := range w.operations {
		if !op.Done() {
			add("%s operation %s unfinished at %s", op.Kind, op.ID, op.Step)
		}
	}
	return append(out, HistoryViolations(w.history)...)
}

// creationStates are the history entries that create a record (no
// from-state) and the state they create it in.
var creationStates = map[string]string{
	"volume.status/" + string(volume.EventCreate):                   string(volume.StatusCreating),
	"volume.attach_status/" + string(volume.AttachEventCreate):      string(volume.AttachReserved),
	"volume.attach_status/" + string(volume.AttachEventBeginAttach): string(volume.AttachAttaching),
}

// HistoryViolations: the history only ever follows table rows, and each
// entity's entries of a table form a chain.
func HistoryViolations(history []volattach.Transition) []string {
	tables := map[string]fsm.Description{}
	for _, d := range append(compute.Tables(), volume.Tables()...) {
		desc := d.Describe()
		tables[desc.Name] = desc
	}
	type chain struct {
		table string
		key   volattach.Key
	}
	last := map[chain]volattach.Transition{}
	var out []string
	for _, h := range history {
		if !onRow(tables, h) {
			out = append(out, fmt.Sprintf("history %s %s: %s -%s-> %s follows no row", h.Table, h.Entity, h.From, h.Event, h.To))
		}
		c := chain{h.Table, h.Entity}
		if prev, ok := last[c]; ok && prev.To != h.From {
			out = append(out, fmt.Sprintf("history %s %s: %s -%s-> %s does not start where the entry before ended (%s)", h.Table, h.Entity, h.From, h.Event, h.To, prev.To))
		}
		last[c] = h
	}
	return out
}

func onRow(tables map[string]fsm.Description, h volattach.Transition) bool {
	if h.From == "" {
		return creationStates[h.Table+"/"+h.Event] == h.To
	}
	for _, row := range tables[h.Table].Transitions {
		// Leads covers a row with alternatives (one target each) and a
		// row that leaves the state unchanged.
		if row.Event == h.Event && slices.Contains(row.From, h.From) && row.Leads(h.From, h.To) {
			return true
		}
	}
	return false
}

// Attached returns the instances volume volumeID is attached to (its
// attachments in attach_status attached), sorted.
func (w *World) Attached(volumeID string) []string {
	var out []string
	for _, a := range w.attachments[volumeID] {
		if a.AttachStatus == volume.AttachAttached {
			out = append(out, a.InstanceUUID)
		}
	}
	slices.Sort(out)
	return out
}

// Volumes returns the ids of every volume, sorted.
func (w *World) Volumes() []string {
	var out []string
	for id := range w.volumes {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}
