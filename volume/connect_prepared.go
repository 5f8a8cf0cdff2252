package volume

import (
	"context"

	"github.com/volattach/volattach"
)

// The connection calls for a caller that commits next (the compute side's
// checkpoints): the side effect runs under the volume lock, which stays
// held, and the caller's commit releases it (volattach.Txn.Releases), so a
// connection costs one lock write instead of two.

// PrepareInitializeConnection is InitializeConnection for a caller whose
// next step is a commit of its own (the compute side's checkpoint): the
// export is made under the volume lock as InitializeConnection makes it,
// but the lock stays held, and the returned Change carries only the lock's
// fence and its release, for the caller to merge into that commit. The
// connection then costs one lock write instead of two. The caller commits
// and calls Committed, or calls Abandon (the lock is released; the export
// stays, as after InitializeConnection).
func (s *Service) PrepareInitializeConnection(ctx context.Context, volumeID string, connector Connector) (ConnectionInfo, *Change, error) {
	check, err := s.connectionCheck(ctx, volumeID, connector)
	if err != nil {
		return ConnectionInfo{}, nil, err
	}
	var info ConnectionInfo
	lk, err := s.holding(ctx, volumeID, func(ctx context.Context, _ volattach.Lock) error {
		var err error
		info, err = s.initializeLocked(ctx, volumeID, connector, check)
		return err
	})
	if err != nil {
		return ConnectionInfo{}, nil, err
	}
	ch := &Change{lock: lk, unlockTimeout: s.unlockTimeout}
	ch.Txn.Fences = []volattach.Fence{lk.Fence()}
	ch.Txn.Releases = []volattach.Lock{lk}
	return info, ch, nil
}

// RuleExportRemovedAfterUnreserve names why a terminate_connection cannot
// be prepared: it ends an attach that rolled back, whose export is removed
// after its commit (TerminateConnection does that).
const RuleExportRemovedAfterUnreserve = "export_removed_after_unreserve"

// PrepareTerminateConnection is TerminateConnection for a caller whose next
// step is a commit of its own (the compute side's detach checkpoint): the
// connection is terminated under the volume lock, which stays held; the
// returned Change carries the lock's fence and release and the unreserve
// TerminateConnection would commit (none for a detaching volume), for the
// caller to merge into that commit. The caller commits and calls
// Committed, or calls Abandon. A terminate that ends a rolled-back attach
// (the volume would be available with its export unused, which is removed
// after the commit) is a NotComposableError: use TerminateConnection.
func (s *Service) PrepareTerminateConnection(ctx context.Context, volumeID string, connector Connector) (*Change, error) {
	check, err := s.terminateCheck(ctx, volumeID, connector)
	if err != nil {
		return nil, err
	}
	var built volattach.Txn
	lk, err := s.holding(ctx, volumeID, func(ctx context.Context, _ volattach.Lock) error {
		st, err := s.read(ctx, volumeID)
		if err != nil {
			return err
		}
		b, err := check(st)
		if err != nil {
			return err
		}
		c := s.newChange(ctx, st, "terminate_connection")
		if err := unreserve(st, c); err != nil {
			return err
		}
		if st.vol.Status == StatusAvailable && !exportInUse(st, nil) {
			return &NotComposableError{VolumeID: volumeID, Op: "terminate_connection", Rule: RuleExportRemovedAfterUnreserve}
		}
		if err := s.terminate(ctx, b, st, connector); err != nil {
			return err
		}
		if !c.empty() {
			built = c.txn()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	ch := &Change{Txn: built, lock: lk, unlockTimeout: s.unlockTimeout}
	ch.Txn.Fences = []volattach.Fence{lk.Fence()}
	ch.Txn.Releases = []volattach.Lock{lk}
	return ch, nil
}
