package node

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/volume"
)

// DefaultRootDeviceName is the root device recorded for a guest that has
// no disk: the one upstream's libvirt driver gives a virtio root disk.
const DefaultRootDeviceName = "/dev/vda"

// vmStateActions are the vm_state table's actions that bring a new
// instance from building to the vm_state matching its guest's power state
// (upstream's power-state sync: a running guest is active, a paused one
// paused, any other stopped).
var vmStateActions = map[compute.PowerState][]compute.Action{
	compute.PowerRunning:  {compute.ActionBuild},
	compute.PowerPaused:   {compute.ActionBuild, compute.ActionPause},
	compute.PowerShutdown: {compute.ActionBuild, compute.ActionStop},
	compute.PowerNoState:  {compute.ActionBuild, compute.ActionStop},
}

// RegisterGuest records the libvirt domain named guest (or whose UUID is
// guest), made outside volattach, as an instance on this node's host, so
// that volumes can be attached to it (there is no boot here). The
// instance's UUID is the domain's; it is launched now; its vm_state follows
// the guest's power state along the compute.vm_state table from building
// (build, then pause or stop), with those rows in its history; its root
// device is the guest's first disk, or DefaultRootDeviceName. A guest
// registered before returns its existing record unchanged. A missing
// domain is compute.ErrInstanceNotFound.
func (n *Node) RegisterGuest(ctx context.Context, guest string) (*compute.Instance, error) {
	uuid, err := n.virt.LookupGuest(ctx, guest)
	if errors.Is(err, compute.ErrInstanceNotFound) && volume.IsUUIDLike(guest) && len(guest) == 36 {
		// Not a name: a UUID, which PowerState looks up below.
		uuid, err = strings.ToLower(guest), nil
	}
	if err != nil {
		return nil, err
	}
	existing := &compute.Instance{UUID: uuid}
	switch err := n.store.Get(ctx, existing); {
	case err == nil:
		return existing, nil
	case !errors.Is(err, volattach.ErrNotFound):
		return nil, err
	}
	power, err := n.virt.PowerState(ctx, uuid)
	if err != nil {
		return nil, err
	}
	root, err := n.rootDevice(ctx, uuid)
	if err != nil {
		return nil, err
	}
	inst := &compute.Instance{
		UUID: uuid, VMState: compute.VMBuilding, LaunchedAt: time.Now().UTC(),
		Host: n.cfg.Host, AvailabilityZone: n.cfg.AvailabilityZone, RootDeviceName: root,
	}
	var history []volattach.Transition
	for _, action := range vmStateActions[power] {
		to, err := compute.CheckInstanceState(compute.Request{Instance: inst}, action)
		if err != nil {
			return nil, fmt.Errorf("node: register guest %s: %w", guest, err)
		}
		history = append(history, volattach.Transition{
			Table: compute.VMStateTableName, Entity: inst.Key(),
			From: string(inst.VMState), To: string(to), Event: string(action),
		})
		inst.VMState = to
	}
	_, err = n.store.Commit(ctx, volattach.Txn{Puts: []volattach.Record{inst}, History: history})
	if errors.Is(err, volattach.ErrConflict) {
		// Registered concurrently: return that record.
		if gerr := n.store.Get(ctx, existing); gerr == nil {
			return existing, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("node: register guest %s: %w", guest, err)
	}
	return inst, nil
}

// rootDevice returns the device path of the guest's first disk, or
// DefaultRootDeviceName for a guest with none.
func (n *Node) rootDevice(ctx context.Context, uuid string) (string, error) {
	disks, err := n.virt.GuestDisks(ctx, uuid, false)
	if err != nil {
		return "", err
	}
	for _, d := range disks {
		if d.Device != "cdrom" && d.Device != "floppy" && d.Target != nil && d.Target.Dev != "" {
			return "/dev/" + d.Target.Dev, nil
		}
	}
	return DefaultRootDeviceName, nil
}
