package compute

import (
	"fmt"
	"time"

	"github.com/volattach/volattach"
)

// DefaultRootDeviceName is the root device an instance without one is
// assumed to have (upstream block_device.DEFAULT_ROOT_DEV_NAME).
const DefaultRootDeviceName = "/dev/sda1"

// Instance is a server (upstream nova.objects.Instance, the fields the
// attach flow reads). Its VMState moves only along the compute.vm_state
// table; attach and detach leave it unchanged.
type Instance struct {
	volattach.Meta
	UUID      string    `json:"uuid"`
	VMState   VMState   `json:"vm_state"`
	TaskState TaskState `json:"task_state,omitempty"`
	// Locked instances refuse every operation unless the caller is an
	// admin (upstream @check_instance_lock).
	Locked   bool   `json:"locked"`
	LockedBy string `json:"locked_by,omitempty"`
	// LaunchedAt is set once the instance has been launched; operations that
	// need a launched instance refuse it while zero.
	LaunchedAt time.Time `json:"launched_at,omitzero"`
	// Host is the compute host the instance runs on; empty when shelved
	// offloaded (no hypervisor holds it).
	Host             string `json:"host,omitempty"`
	AvailabilityZone string `json:"availability_zone,omitempty"`
	ProjectID        string `json:"project_id,omitempty"`
	// RootDeviceName is the guest's root disk, such as "/dev/vda"; its
	// prefix decides the device names of attached volumes.
	RootDeviceName string `json:"root_device_name,omitempty"`
	// LocalDevices are the device names of the guest's local disks other
	// than the root: ephemeral, swap and config drive (upstream's blockinfo
	// mapping holds them beside the volumes). A new volume never takes one.
	LocalDevices []string `json:"local_devices,omitempty"`
	// BlockDevices indexes the instance's volume block device mappings:
	// volume id -> device name ("" while none is chosen, as for a
	// shelved_offloaded instance). It is written in the same transaction as
	// every mapping create and destroy, so it always agrees with the
	// mappings, and a change to it conflicts with any concurrent change to
	// the instance: the gates checked on the instance and the mapping
	// created under them are one atomic step.
	BlockDevices map[string]string `json:"block_devices,omitempty"`
	// OldVMState is the vm_state before a resize (upstream
	// system_metadata['old_vm_state']): confirm_resize and revert_resize
	// return to stopped when it is, to active otherwise.
	OldVMState VMState `json:"old_vm_state,omitempty"`
}

// Key returns the instance's store key.
func (i *Instance) Key() volattach.Key {
	return volattach.Key{Kind: volattach.KindInstance, ID: i.UUID}
}

// Launched reports whether the instance has ever been launched (upstream
// instance.launched_at).
func (i *Instance) Launched() bool { return !i.LaunchedAt.IsZero() }

// Validate checks a decoded instance: a uuid, a vm_state of the
// compute.vm_state table (an *fsm.UnknownStateError otherwise), and a known
// task_state.
func (i *Instance) Validate() error {
	if i.UUID == "" {
		return fmt.Errorf("instance: record has no uuid")
	}
	if _, err := VMStateTable.ParseState(string(i.VMState)); err != nil {
		return fmt.Errorf("instance %s: %w", i.UUID, err)
	}
	if !i.TaskState.Valid() {
		return fmt.Errorf("instance %s: unknown task_state %q", i.UUID, i.TaskState)
	}
	return nil
}
