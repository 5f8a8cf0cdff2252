package compute

import "github.com/volattach/volattach/fsm"

// Tables returns the compute side's transition tables for rendering: the
// compute.vm_state table, then the attach and detach step tables.
func Tables() []fsm.Describer {
	return []fsm.Describer{VMStateTable, AttachStepTable, DetachStepTable}
}
