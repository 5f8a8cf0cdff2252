package compute

import "slices"

// VMState is an instance's vm_state (upstream nova/compute/vm_states.py). It
// is stored as its string value; values are only ever added, never renamed,
// so records written by an older release always parse.
type VMState string

// The 12 upstream vm_states, with upstream's string values.
const (
	VMActive           VMState = "active"
	VMBuilding         VMState = "building"
	VMPaused           VMState = "paused"
	VMSuspended        VMState = "suspended"
	VMStopped          VMState = "stopped"
	VMRescued          VMState = "rescued"
	VMResized          VMState = "resized"
	VMSoftDeleted      VMState = "soft-delete"
	VMDeleted          VMState = "deleted"
	VMError            VMState = "error"
	VMShelved          VMState = "shelved"
	VMShelvedOffloaded VMState = "shelved_offloaded"
)

// VMStates lists every vm_state in upstream order.
var VMStates = []VMState{
	VMActive, VMBuilding, VMPaused, VMSuspended, VMStopped, VMRescued,
	VMResized, VMSoftDeleted, VMDeleted, VMError, VMShelved, VMShelvedOffloaded,
}

// VolumeAttachVMStates are the vm_states attach_volume and detach_volume
// accept (upstream @check_instance_state on API.attach_volume/detach_volume).
var VolumeAttachVMStates = []VMState{
	VMActive, VMPaused, VMStopped, VMResized, VMSoftDeleted, VMShelved, VMShelvedOffloaded,
}

// TaskState is an instance's task_state (upstream
// nova/compute/task_states.py): the operation in progress, if any. TaskNone
// (the empty string) is upstream's None.
type TaskState string

// TaskNone is "no task in progress" (upstream task_state None).
const TaskNone TaskState = ""

// The 42 upstream task_states, with upstream's string values.
const (
	TaskScheduling                 TaskState = "scheduling"
	TaskBlockDeviceMapping         TaskState = "block_device_mapping"
	TaskNetworking                 TaskState = "networking"
	TaskSpawning                   TaskState = "spawning"
	TaskImageSnapshot              TaskState = "image_snapshot"
	TaskImageSnapshotPending       TaskState = "image_snapshot_pending"
	TaskImagePendingUpload         TaskState = "image_pending_upload"
	TaskImageUploading             TaskState = "image_uploading"
	TaskImageBackup                TaskState = "image_backup"
	TaskUpdatingPassword           TaskState = "updating_password"
	TaskResizePrep                 TaskState = "resize_prep"
	TaskResizeMigrating            TaskState = "resize_migrating"
	TaskResizeMigrated             TaskState = "resize_migrated"
	TaskResizeFinish               TaskState = "resize_finish"
	TaskResizeReverting            TaskState = "resize_reverting"
	TaskResizeConfirming           TaskState = "resize_confirming"
	TaskRebooting                  TaskState = "rebooting"
	TaskRebootPending              TaskState = "reboot_pending"
	TaskRebootStarted              TaskState = "reboot_started"
	TaskRebootingHard              TaskState = "rebooting_hard"
	TaskRebootPendingHard          TaskState = "reboot_pending_hard"
	TaskRebootStartedHard          TaskState = "reboot_started_hard"
	TaskPausing                    TaskState = "pausing"
	TaskUnpausing                  TaskState = "unpausing"
	TaskSuspending                 TaskState = "suspending"
	TaskResuming                   TaskState = "resuming"
	TaskPoweringOff                TaskState = "powering-off"
	TaskPoweringOn                 TaskState = "powering-on"
	TaskRescuing                   TaskState = "rescuing"
	TaskUnrescuing                 TaskState = "unrescuing"
	TaskRebuilding                 TaskState = "rebuilding"
	TaskRebuildBlockDeviceMapping  TaskState = "rebuild_block_device_mapping"
	TaskRebuildSpawning            TaskState = "rebuild_spawning"
	TaskMigrating                  TaskState = "migrating"
	TaskDeleting                   TaskState = "deleting"
	TaskSoftDeleting               TaskState = "soft-deleting"
	TaskRestoring                  TaskState = "restoring"
	TaskShelving                   TaskState = "shelving"
	TaskShelvingImagePendingUpload TaskState = "shelving_image_pending_upload"
	TaskShelvingImageUploading     TaskState = "shelving_image_uploading"
	TaskShelvingOffloading         TaskState = "shelving_offloading"
	TaskUnshelving                 TaskState = "unshelving"
)

// TaskStates lists every task_state in upstream order (TaskNone excluded).
var TaskStates = []TaskState{
	TaskScheduling, TaskBlockDeviceMapping, TaskNetworking, TaskSpawning,
	TaskImageSnapshot, TaskImageSnapshotPending, TaskImagePendingUpload,
	TaskImageUploading, TaskImageBackup, TaskUpdatingPassword, TaskResizePrep,
	TaskResizeMigrating, TaskResizeMigrated, TaskResizeFinish, TaskResizeReverting,
	TaskResizeConfirming, TaskRebooting, TaskRebootPending, TaskRebootStarted,
	TaskRebootingHard, TaskRebootPendingHard, TaskRebootStartedHard, TaskPausing,
	TaskUnpausing, TaskSuspending, TaskResuming, TaskPoweringOff, TaskPoweringOn,
	TaskRescuing, TaskUnrescuing, TaskRebuilding, TaskRebuildBlockDeviceMapping,
	TaskRebuildSpawning, TaskMigrating, TaskDeleting, TaskSoftDeleting,
	TaskRestoring, TaskShelving, TaskShelvingImagePendingUpload,
	TaskShelvingImageUploading, TaskShelvingOffloading, TaskUnshelving,
}

// Valid reports whether t is TaskNone or one of the 42 upstream task_states.
func (t TaskState) Valid() bool { return t == TaskNone || slices.Contains(TaskStates, t) }
