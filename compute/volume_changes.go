package compute

import (
	"context"

	"github.com/volattach/volattach/volume"
)

// VolumeChanges is the volume side as values, offered by a volume side that
// shares the compute side's Store (volume.Service does). The compute side
// then commits the volume's reserve and begin_detaching in the same
// transaction as the mapping and the operation, and the volume's attach in
// the attach's final commit: compute and volume records appear together or
// not at all (no dangling mapping, no dangling attachment), and each costs
// no etcd write of its own. A volume side reached over the network does not
// offer it and is called through VolumeAPI (docs/architecture.md).
type VolumeChanges interface {
	// ReserveChange is Reserve as a value.
	ReserveChange(ctx context.Context, volumeID string) (*volume.Change, error)
	// BeginDetachingChange is BeginDetaching as a value.
	BeginDetachingChange(ctx context.Context, volumeID string) (*volume.Change, error)
	// AttachChange is Attach as a value; an error matching
	// volume.ErrNotComposable when the volume's backend has side effects
	// to run (an attach hook): Attach is called instead.
	AttachChange(ctx context.Context, volumeID, instanceUUID, host, mountpoint, mode string) (*volume.Change, error)
	// PrepareInitializeConnection is InitializeConnection whose volume
	// lock stays held and is released by the caller's next commit, which
	// merges the returned Change (the lock's fence and release); the
	// caller then calls Committed, or Abandon when it does not commit.
	PrepareInitializeConnection(ctx context.Context, volumeID string, conn volume.Connector) (volume.ConnectionInfo, *volume.Change, error)
	// PrepareTerminateConnection is TerminateConnection whose volume lock
	// stays held and is released by the caller's next commit, which merges
	// the returned Change; volume.ErrNotComposable when the terminate ends
	// a rolled-back attach (TerminateConnection is called then).
	PrepareTerminateConnection(ctx context.Context, volumeID string, conn volume.Connector) (*volume.Change, error)
	// PrepareDetach runs Detach's side effects under the volume lock and
	// returns its last commit as a value fenced by that lock and releasing
	// it; the caller commits it (then calls Committed) or calls Abandon.
	PrepareDetach(ctx context.Context, volumeID, attachmentID string) (*volume.Change, error)
}

var _ VolumeChanges = (*volume.Service)(nil)

// changes returns the volume side's changes as values, or nil when it
// offers none.
func changes(v VolumeAPI) VolumeChanges {
	vc, _ := v.(VolumeChanges)
	return vc
}
