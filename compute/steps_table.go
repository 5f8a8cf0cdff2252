package compute

import "github.com/volattach/volattach/fsm"

// StepEvent is an event of the attach and detach step tables: a step done,
// a failure, or a compensation done.
type StepEvent string

// StepTable is the type of the attach and detach step tables; the subject
// is the operation.
type StepTable = fsm.Table[Step, StepEvent, *Operation]

// Table names of the operation step tables.
const (
	AttachStepTableName = "compute.attach_operation"
	DetachStepTableName = "compute.detach_operation"
)

// Attach steps. The forward path follows upstream's attach (REFERENCE
// section 4, nova/compute/manager.py attach_volume and
// nova/virt/block_device.py DriverVolumeBlockDevice.attach); the rollback
// states are named by the compensation still to run.
const (
	// StepRequested: the API created the mapping, reserved the volume and
	// queued the operation.
	StepRequested Step = "requested"
	// StepConverted: the mapping's volume exists and is reserved (blank,
	// snapshot and image mappings create it here).
	StepConverted Step = "converted"
	// StepConnectionInitialized: initialize_connection returned
	// connection_info for this host's connector.
	StepConnectionInitialized Step = "connection_initialized"
	// StepGuestAttached: the volume is connected on the host and the disk is
	// in the guest.
	StepGuestAttached Step = "guest_attached"
	// StepConnectionSaved: connection_info and the volume size are saved on
	// the mapping, before the volume turns in-use (detach needs them).
	StepConnectionSaved Step = "connection_saved"
	// StepAttached: the volume side recorded the attachment; the volume is
	// in-use. Terminal.
	StepAttached Step = "attached"
	// StepDetachingGuest: rolling back; the disk must leave the guest.
	StepDetachingGuest Step = "detaching_guest"
	// StepTerminatingConnection: rolling back; the connection must be
	// terminated.
	StepTerminatingConnection Step = "terminating_connection"
	// StepReleasingVolume: rolling back; the volume must be detached (when
	// the volume-side attach may have happened) and unreserved, and the
	// mapping destroyed.
	StepReleasingVolume Step = "releasing_volume"
	// StepRolledBack: every side effect is undone, the mapping destroyed.
	// Terminal.
	StepRolledBack Step = "rolled_back"
)

// Detach steps (nova/compute/manager.py detach_volume,
// DriverVolumeBlockDevice.detach). StepRequested is also the detach's first
// step: the API ran begin_detaching (volume detaching) and queued it.
const (
	// StepGuestDetached: the disk left the guest and the volume is
	// disconnected on the host.
	StepGuestDetached Step = "guest_detached"
	// StepConnectionTerminated: terminate_connection returned.
	StepConnectionTerminated Step = "connection_terminated"
	// StepDetached: the volume side detached the volume and the mapping is
	// destroyed. Terminal.
	StepDetached Step = "detached"
)

// Step events.
const (
	EventConvert              StepEvent = "convert"
	EventInitializeConnection StepEvent = "initialize_connection"
	EventAttachGuest          StepEvent = "attach_guest"
	EventSaveConnectionInfo   StepEvent = "save_connection_info"
	EventAttachVolume         StepEvent = "attach_volume"
	EventFail                 StepEvent = "fail"
	EventDetachGuest          StepEvent = "detach_guest"
	EventTerminateConnection  StepEvent = "terminate_connection"
	EventUnreserve            StepEvent = "unreserve"
	EventDetachVolume         StepEvent = "detach_volume"
	EventRollDetaching        StepEvent = "roll_detaching"
)

// Guards of the step tables.
var (
	// GuardOnHost: the instance has a hypervisor host, so the volume is
	// connected for real (upstream API._attach_volume casts to the host).
	GuardOnHost = fsm.Guard[*Operation]{Name: "instance_on_host", Check: func(o *Operation) error {
		if o.Offloaded() {
			return Raise(ErrInstanceInvalidState, "instance %s is shelved_offloaded: no host to connect on", o.InstanceUUID)
		}
		return nil
	}}
	// GuardOffloaded: the instance is shelved_offloaded, so attach only
	// completes the attachment without a connector and detach skips the
	// host (upstream _attach_volume_shelved_offloaded and
	// _detach_volume_shelved_offloaded).
	GuardOffloaded = fsm.Guard[*Operation]{Name: "instance_shelved_offloaded", Check: func(o *Operation) error {
		if !o.Offloaded() {
			return Raise(ErrInstanceInvalidState, "instance %s is on host %s, not shelved_offloaded", o.InstanceUUID, o.Host)
		}
		return nil
	}}
)

// AttachStepTable is the compute.attach_operation table: the steps of an
// attach and, for each failure point, the compensations REFERENCE section 4
// lists, in upstream's order. A failure at initialize_connection or before
// only unreserves and destroys the mapping (manager.attach_volume's
// handler); a failed guest attach terminates the connection first
// (_legacy_volume_attach); a failure once the disk is in the guest detaches
// it (errors only logged), terminates the connection and, when the failure
// was the volume-side attach, detaches on the volume side. Once the volume
// side has attached, the operation only goes forward.
var AttachStepTable = fsm.New(AttachStepTableName, fsm.Definition[Step, StepEvent, *Operation]{
	States: []Step{StepRequested, StepConverted, StepConnectionInitialized, StepGuestAttached,
		StepConnectionSaved, StepAttached, StepDetachingGuest, StepTerminatingConnection,
		StepReleasingVolume, StepRolledBack},
	Initial:  StepRequested,
	Terminal: []Step{StepAttached, StepRolledBack},
	Rows: []fsm.Row[Step, StepEvent, *Operation]{
		// driver_block_device.convert_volume; blank/snapshot/image create the volume.
		{Event: EventConvert, From: []Step{StepRequested}, To: StepConverted},
		// get_volume_connector, then volume_api.initialize_connection.
		{Event: EventInitializeConnection, From: []Step{StepConverted}, To: StepConnectionInitialized, Guards: []fsm.Guard[*Operation]{GuardOnHost}},
		// virt_driver.attach_volume: connect on the host, add the disk to the guest.
		{Event: EventAttachGuest, From: []Step{StepConnectionInitialized}, To: StepGuestAttached},
		// bdm.save() of connection_info before the volume turns in-use.
		{Event: EventSaveConnectionInfo, From: []Step{StepGuestAttached}, To: StepConnectionSaved},
		// volume_api.attach(instance, mountpoint, mode).
		{Event: EventAttachVolume, From: []Step{StepConnectionSaved}, To: StepAttached},
		// shelved_offloaded: volume_api.attach with no host and no connector.
		{Event: EventAttachVolume, From: []Step{StepConverted}, To: StepAttached, Guards: []fsm.Guard[*Operation]{GuardOffloaded}},
		// Failure before the guest attach: unreserve and destroy the mapping.
		{Event: EventFail, From: []Step{StepRequested, StepConverted}, To: StepReleasingVolume},
		// Failure of the guest attach: terminate_connection first.
		{Event: EventFail, From: []Step{StepConnectionInitialized}, To: StepTerminatingConnection},
		// Failure once the disk is in the guest: detach it first.
		{Event: EventFail, From: []Step{StepGuestAttached, StepConnectionSaved}, To: StepDetachingGuest},
		// virt_driver.detach_volume (errors only logged, as upstream).
		{Event: EventDetachGuest, From: []Step{StepDetachingGuest}, To: StepTerminatingConnection},
		// volume_api.terminate_connection(connector).
		{Event: EventTerminateConnection, From: []Step{StepTerminatingConnection}, To: StepReleasingVolume},
		// volume_api.detach when the volume-side attach may have run, then
		// unreserve_volume and bdm.destroy().
		{Event: EventUnreserve, From: []Step{StepReleasingVolume}, To: StepRolledBack},
	},
})

// DetachStepTable is the compute.detach_operation table. A guest that does
// not release the disk (or any failure of the driver detach) rolls the
// volume back to in-use with roll_detaching and keeps the mapping
// (DriverVolumeBlockDevice.driver_detach); once the disk has left the guest
// the detach only goes forward, retried until it ends.
var DetachStepTable = fsm.New(DetachStepTableName, fsm.Definition[Step, StepEvent, *Operation]{
	States:   []Step{StepRequested, StepGuestDetached, StepConnectionTerminated, StepDetached, StepRolledBack},
	Initial:  StepRequested,
	Terminal: []Step{StepDetached, StepRolledBack},
	Rows: []fsm.Row[Step, StepEvent, *Operation]{
		// virt_driver.detach_volume: the disk leaves the guest (with
		// retries), the volume is disconnected on the host.
		{Event: EventDetachGuest, From: []Step{StepRequested}, To: StepGuestDetached, Guards: []fsm.Guard[*Operation]{GuardOnHost}},
		// volume_api.terminate_connection(connector).
		{Event: EventTerminateConnection, From: []Step{StepGuestDetached}, To: StepConnectionTerminated},
		// volume_api.detach, then bdm.destroy().
		{Event: EventDetachVolume, From: []Step{StepConnectionTerminated}, To: StepDetached},
		// shelved_offloaded: volume_api.detach and bdm.destroy() only.
		{Event: EventDetachVolume, From: []Step{StepRequested}, To: StepDetached, Guards: []fsm.Guard[*Operation]{GuardOffloaded}},
		// The driver detach failed: volume_api.roll_detaching, mapping kept.
		// Only on a host: a shelved_offloaded detach never ran
		// begin_detaching, so there is nothing to roll back.
		{Event: EventRollDetaching, From: []Step{StepRequested}, To: StepRolledBack, Guards: []fsm.Guard[*Operation]{GuardOnHost}},
	},
})
