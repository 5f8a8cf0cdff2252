package compute

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/volume"
)

// APIConfig configures an API.
type APIConfig struct {
	// Store, Volumes and Queue are required.
	Store   volattach.Store
	Volumes VolumeAPI
	Queue   HostQueue
	// Locker is required for shelved_offloaded instances, whose operations
	// the API runs itself under the instance lock.
	Locker volattach.Locker
	// Services tells whether a host's agent is up (detach refuses a down
	// host); nil: every host is up.
	Services ServiceGroup
	Notifier volattach.Notifier
	Log      logrus.FieldLogger
	// Namer chooses device names; MaxDisks is max_disk_devices_to_attach
	// (zero value: 0 means no disk at all, so NewAPI turns an unset
	// DeviceNamer into the upstream default of no limit).
	Namer *DeviceNamer
	// DefaultDiskBus is the bus of a disk whose request names none
	// (default virtio, as upstream's libvirt driver on QEMU/KVM).
	DefaultDiskBus string
	// CrossAZAttachDisabled mirrors upstream [cinder] cross_az_attach =
	// False: the instance's and the volume's availability zones must match.
	// Upstream's default (false here) allows any zone.
	CrossAZAttachDisabled bool
	// ConflictRetries bounds the re-reads when a concurrent request changed
	// the instance under a mapping's creation (default 100: one instance
	// can take many attaches at once).
	ConflictRetries int
	Clock           func() time.Time
}

// API is the front half of the compute side (upstream nova.compute.api.API,
// the volume attachment part): it applies every gate of REFERENCE section 2,
// reserves the volume, records the mapping and the operation, and hands the
// operation to the instance's host through the HostQueue; or, for a
// shelved_offloaded instance, completes it itself.
type API struct {
	cfg    APIConfig
	runner *runner
	log    logrus.FieldLogger
}

// ErrAPINotConfigured is returned by NewAPI when a required dependency is
// missing.
var ErrAPINotConfigured = errors.New("compute: API needs a store, a volume API and a host queue")

// NewAPI returns an API.
func NewAPI(cfg APIConfig) (*API, error) {
	if cfg.Store == nil || cfg.Volumes == nil || cfg.Queue == nil {
		return nil, ErrAPINotConfigured
	}
	if cfg.Notifier == nil {
		cfg.Notifier = volattach.Discard
	}
	cfg.Log = volattach.LoggerOrDiscard(cfg.Log)
	if cfg.Namer == nil {
		cfg.Namer = &DeviceNamer{MaxDisks: -1}
	}
	if cfg.DefaultDiskBus == "" {
		cfg.DefaultDiskBus = BusVirtio
	}
	if cfg.ConflictRetries <= 0 {
		cfg.ConflictRetries = 100
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	a := &API{cfg: cfg, log: cfg.Log}
	a.runner = &runner{store: cfg.Store, volumes: cfg.Volumes, notify: cfg.Notifier, log: cfg.Log, now: cfg.Clock, conflictRetries: cfg.ConflictRetries}
	return a, nil
}

// Caller is who makes an API request.
type Caller struct {
	// Admin is the caller's context.is_admin: admins may act on locked
	// instances.
	Admin bool
	// RequestID ties history entries, notifications and logs to the request.
	RequestID string
}

// AttachRequest is POST /servers/{id}/os-volume_attachments.
type AttachRequest struct {
	Caller
	InstanceUUID string
	VolumeID     string
	// Device is the requested device path, or "". It is validated
	// (InvalidDevicePath 400) but, as upstream's libvirt driver does, the
	// device actually used is the next free one on the bus, even when the
	// requested one is free or in use; the response says which.
	Device string
	// DiskBus and DeviceType ("" for the defaults) are one of
	// AttachDiskBuses and AttachDeviceTypes (ValidationError 400).
	DiskBus    string
	DeviceType string
	// Tag (microversion 2.49; at most MaxTagLength characters, no ',' or
	// '/') and DeleteOnTermination (2.79).
	Tag                 string
	DeleteOnTermination bool
	// SupportsMultiattach is true for microversion 2.60 or later: only then
	// may a multiattach volume be attached.
	SupportsMultiattach bool
	// Async returns once the operation is queued, without waiting for the
	// host (upstream's behaviour from microversion 2.101). The response
	// then carries the device reserved for the attach, and Operation.
	Async bool
}

// DetachRequest is DELETE /servers/{id}/os-volume_attachments/{volume}.
type DetachRequest struct {
	Caller
	InstanceUUID string
	VolumeID     string
	// Async returns once the operation is queued (upstream answers 202 and
	// detaches asynchronously; the synchronous mode waits for the host).
	Async bool
}

// VolumeAttachment is a volume attachment as the compute API shows it
// (upstream's volumeAttachment view, with the 2.89 fields).
type VolumeAttachment struct {
	// ID is the volume id (upstream's attachment "id" before 2.89).
	ID                  string `json:"id"`
	ServerID            string `json:"serverId"`
	VolumeID            string `json:"volumeId"`
	Device              string `json:"device"`
	Tag                 string `json:"tag,omitempty"`
	DeleteOnTermination bool   `json:"delete_on_termination"`
	AttachmentID        string `json:"attachment_id,omitempty"`
	BDMUUID             string `json:"bdm_uuid,omitempty"`
	// Operation is the attach or detach in progress on the mapping, empty
	// once it ended.
	Operation string `json:"operation,omitempty"`
}

func viewOf(m *BlockDeviceMapping) *VolumeAttachment {
	return &VolumeAttachment{
		ID: m.VolumeID, ServerID: m.InstanceUUID, VolumeID: m.VolumeID, Device: m.DeviceName,
		Tag: m.Tag, DeleteOnTermination: m.DeleteOnTermination, AttachmentID: m.AttachmentID,
		BDMUUID: m.UUID, Operation: m.OperationID,
	}
}

// instance reads an instance; InstanceNotFound (404) when none has the id,
// including an id no record can have (recordID), which is not looked up.
func (a *API) instance(ctx context.Context, uuid string) (*Instance, error) {
	if !recordID(uuid) {
		return nil, Raise(ErrInstanceNotFound, "instance %s could not be found", shortID(uuid))
	}
	inst := &Instance{UUID: uuid}
	if err := a.cfg.Store.Get(ctx, inst); err != nil {
		if errors.Is(err, volattach.ErrNotFound) {
			return nil, Raise(ErrInstanceNotFound, "instance %s could not be found", shortID(uuid))
		}
		return nil, err
	}
	return inst, nil
}

// volume reads a volume from the volume side; VolumeNotFound (404) when
// none has the id, including an id no record can have, which is not
// looked up.
func (a *API) volume(ctx context.Context, id string) (*volume.Volume, error) {
	if !recordID(id) {
		return nil, Raise(ErrVolumeNotFound, "volume %s could not be found", shortID(id))
	}
	v, err := a.cfg.Volumes.GetVolume(ctx, id)
	if err != nil {
		return nil, volumeError(err)
	}
	return v, nil
}

// mapping reads the mapping of volumeID on instanceUUID; nil if none.
func (a *API) mapping(ctx context.Context, volumeID, instanceUUID string) (*BlockDeviceMapping, error) {
	if !recordID(volumeID) || !recordID(instanceUUID) {
		return nil, nil
	}
	m := &BlockDeviceMapping{VolumeID: volumeID, InstanceUUID: instanceUUID}
	switch err := a.cfg.Store.Get(ctx, m); {
	case errors.Is(err, volattach.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	}
	return m, nil
}

// volumeMappings returns the instance uuids holding a mapping of volumeID.
func (a *API) volumeMappings(ctx context.Context, volumeID string) ([]string, error) {
	prefix := MappingPrefix(volumeID)
	ids, err := a.cfg.Store.List(ctx, volattach.KindMapping, prefix, "", 0)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id[len(prefix):]
	}
	return out, nil
}

// ListAttachments returns the volume attachments of an instance, ordered
// by volume id (GET /servers/{id}/os-volume_attachments).
func (a *API) ListAttachments(ctx context.Context, instanceUUID string) ([]*VolumeAttachment, error) {
	inst, err := a.instance(ctx, instanceUUID)
	if err != nil {
		return nil, err
	}
	var out []*VolumeAttachment
	for _, volumeID := range sortedKeys(inst.BlockDevices) {
		m, err := a.mapping(ctx, volumeID, instanceUUID)
		if err != nil {
			return nil, err
		}
		if m != nil {
			out = append(out, viewOf(m))
		}
	}
	return out, nil
}

// ShowAttachment returns one volume attachment of an instance
// (GET /servers/{id}/os-volume_attachments/{volume}); VolumeBDMNotFound
// (404) when the volume is not attached to it.
func (a *API) ShowAttachment(ctx context.Context, instanceUUID, volumeID string) (*VolumeAttachment, error) {
	if _, err := a.instance(ctx, instanceUUID); err != nil {
		return nil, err
	}
	m, err := a.mapping(ctx, volumeID, instanceUUID)
	if err != nil {
		return nil, err
	}
	if m == nil {
		return nil, notAttached(instanceUUID, volumeID)
	}
	return viewOf(m), nil
}

func notAttached(instanceUUID, volumeID string) error {
	return Raise(ErrVolumeBDMNotFound, "instance %s is not attached to volume %s", shortID(instanceUUID), shortID(volumeID))
}

// Operation returns an operation record, its credentials masked: a
// finished operation keeps none (the mapping holds connection_info for the
// detach, as upstream's BDM does), and a running one's are not the
// caller's to see.
func (a *API) Operation(ctx context.Context, id string) (*Operation, error) {
	op, err := a.operation(ctx, id)
	if err != nil {
		return nil, err
	}
	return op.redacted(), nil
}

// operation reads an operation record as stored.
func (a *API) operation(ctx context.Context, id string) (*Operation, error) {
	op := &Operation{ID: id}
	if err := a.cfg.Store.Get(ctx, op); err != nil {
		return nil, err
	}
	return op, nil
}

// WaitOperation waits until operation id ends (for a caller that attached
// or detached with Async) and returns its result; OperationTimedOut when
// ctx ends first.
func (a *API) WaitOperation(ctx context.Context, id string) (OperationResult, error) {
	op, err := a.operation(ctx, id)
	if err != nil {
		return OperationResult{}, err
	}
	if op.Done() || op.Offloaded() {
		return resultOf(op), nil
	}
	return a.wait(ctx, op)
}

// wait waits for op's result from its host: the finished operation, or
// OperationTimedOut when ctx ends first (the operation goes on).
//
// The host's result on the queue is the usual answer (a store-backed
// queue answers with none when the operation's final commit landed: the
// record is read then). An operation can
// also end without one, when it was never handed to its host (an API
// process stopped in between) and a reconciler finished or undid it: the
// operation record is read again now and then, so such a wait ends too.
func (a *API) wait(ctx context.Context, op *Operation) (OperationResult, error) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type answer struct {
		res   OperationResult
		err   error
		empty bool
	}
	queued := make(chan answer, 1)
	go func() {
		raw, err := a.cfg.Queue.Wait(wctx, op.Host, op.ID)
		if err != nil {
			queued <- answer{err: err}
			return
		}
		if len(raw) == 0 {
			queued <- answer{empty: true}
			return
		}
		res, err := decodeResult(raw)
		queued <- answer{res: res, err: err}
	}()
	poll := time.NewTimer(operationPollFirst)
	defer poll.Stop()
	for next := operationPollFirst; ; next = min(2*next, operationPollMax) {
		select {
		case got := <-queued:
			if got.err != nil && ctx.Err() != nil {
				return OperationResult{}, Raise(ErrOperationTimedOut, "operation %s on host %s still in progress: %w", op.ID, op.Host, got.err)
			}
			if got.err != nil || !got.empty {
				return got.res, got.err
			}
			// A store-backed queue answers with no result: the
			// operation record holds it.
			cur := &Operation{ID: op.ID}
			if err := a.cfg.Store.Get(wctx, cur); err == nil && cur.Done() {
				return resultOf(cur), nil
			}
			queued = nil // ended without a result it can tell: poll
		case <-ctx.Done():
			return OperationResult{}, Raise(ErrOperationTimedOut, "operation %s on host %s still in progress: %w", op.ID, op.Host, ctx.Err())
		case <-poll.C:
			cur := &Operation{ID: op.ID}
			if err := a.cfg.Store.Get(wctx, cur); err == nil && cur.Done() {
				return resultOf(cur), nil
			}
			poll.Reset(next)
		}
	}
}

// How often wait reads an operation record whose host has not answered:
// first after operationPollFirst, then doubling up to operationPollMax.
// Only operations that end without a host's answer need it.
const (
	operationPollFirst = time.Second
	operationPollMax   = 10 * time.Second
)

// runLocally runs an operation of a shelved_offloaded instance in this
// process, under the instance lock (there is no host to hand it to).
func (a *API) runLocally(ctx context.Context, op *Operation) error {
	if a.cfg.Locker == nil {
		return fmt.Errorf("compute: a locker is needed to run operations of shelved_offloaded instances")
	}
	return volattach.WithLock(ctx, a.cfg.Locker, volattach.InstanceLock(op.InstanceUUID), a.log, func(ctx context.Context, lk volattach.Lock) error {
		if err := a.cfg.Store.Get(ctx, op); err != nil {
			return err
		}
		return a.runner.run(ctx, op, lk.Fence())
	})
}
