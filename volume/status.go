package volume

// Status is a volume's status (upstream cinder/objects/fields.py
// VolumeStatus). Stored as its string value: values are only ever added.
type Status string

// The 22 upstream volume statuses.
const (
	StatusCreating         Status = "creating"
	StatusAvailable        Status = "available"
	StatusDeleting         Status = "deleting"
	StatusError            Status = "error"
	StatusErrorDeleting    Status = "error_deleting"
	StatusErrorManaging    Status = "error_managing"
	StatusManaging         Status = "managing"
	StatusAttaching        Status = "attaching"
	StatusInUse            Status = "in-use"
	StatusDetaching        Status = "detaching"
	StatusMaintenance      Status = "maintenance"
	StatusRestoringBackup  Status = "restoring-backup"
	StatusErrorRestoring   Status = "error_restoring"
	StatusReserved         Status = "reserved"
	StatusAwaitingTransfer Status = "awaiting-transfer"
	StatusBackingUp        Status = "backing-up"
	StatusErrorBackingUp   Status = "error_backing-up"
	StatusErrorExtending   Status = "error_extending"
	StatusDownloading      Status = "downloading"
	StatusUploading        Status = "uploading"
	StatusRetyping         Status = "retyping"
	StatusExtending        Status = "extending"
)

// Statuses lists every volume status in upstream order.
var Statuses = []Status{
	StatusCreating, StatusAvailable, StatusDeleting, StatusError, StatusErrorDeleting,
	StatusErrorManaging, StatusManaging, StatusAttaching, StatusInUse, StatusDetaching,
	StatusMaintenance, StatusRestoringBackup, StatusErrorRestoring, StatusReserved,
	StatusAwaitingTransfer, StatusBackingUp, StatusErrorBackingUp, StatusErrorExtending,
	StatusDownloading, StatusUploading, StatusRetyping, StatusExtending,
}

// AttachStatus is an attachment's status, and the summary attach status of a
// volume (upstream VolumeAttachStatus).
type AttachStatus string

// The 7 upstream attach statuses.
const (
	AttachAttached       AttachStatus = "attached"
	AttachAttaching      AttachStatus = "attaching"
	AttachDetached       AttachStatus = "detached"
	AttachReserved       AttachStatus = "reserved"
	AttachErrorAttaching AttachStatus = "error_attaching"
	AttachErrorDetaching AttachStatus = "error_detaching"
	AttachDeleted        AttachStatus = "deleted"
)

// AttachStatuses lists every attach status in upstream order.
var AttachStatuses = []AttachStatus{
	AttachAttached, AttachAttaching, AttachDetached, AttachReserved,
	AttachErrorAttaching, AttachErrorDetaching, AttachDeleted,
}

// Attach modes.
const (
	ModeRW = "rw"
	ModeRO = "ro"
)
