package volume

import "github.com/volattach/volattach/fsm"

// Tables returns the volume side's transition tables, in this order: the
// volume.status table and the volume.attach_status table.
func Tables() []fsm.Describer {
	return []fsm.Describer{statusTable, attachTable}
}

// VolumeStatusTable returns the volume.status table.
func VolumeStatusTable() *StatusTable { return statusTable }

// AttachStatusTable returns the volume.attach_status table.
func AttachStatusTable() *AttachTable { return attachTable }
