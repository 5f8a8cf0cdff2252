package volume

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/volattach/volattach"
)

// Rules of the reconciler's repairs on the volume side.
const (
	// RuleExportUnused names the refusal to remove an export an
	// attachment may use, or while the volume is in a transitional status
	// (an attach reserves the volume before it exports it).
	RuleExportUnused = "export_unused"
)

// Export names one export a backend holds: the backend's name and the
// volume's id.
type Export struct {
	Backend  string `json:"backend"`
	VolumeID string `json:"volume_id"`
}

// Exports lists the exports of every backend that can list them
// (ExportLister), ordered by backend name then volume id. listed names the
// backends that answered, so a caller knows which backends were not
// audited.
func (s *Service) Exports(ctx context.Context) (exports []Export, listed []string, err error) {
	for _, name := range slices.Sorted(maps.Keys(s.backends)) {
		lister, ok := s.backends[name].(ExportLister)
		if !ok {
			continue
		}
		ids, err := lister.ListExports(ctx)
		if err != nil {
			return nil, nil, backendError(err, "backend %s: listing exports failed", name)
		}
		slices.Sort(ids)
		for _, id := range ids {
			exports = append(exports, Export{Backend: name, VolumeID: id})
		}
		listed = append(listed, name)
	}
	return exports, listed, nil
}

// RemoveStaleExport removes an export nothing uses, under the volume's lock
// (a reconciler's repair; upstream leaves such exports behind). It refuses
// (InvalidVolume, rule export_unused) when the volume, as read under the
// lock, has an attachment that may use the export (attaching, attached,
// error_detaching, or holding connection_info) or is attaching, reserved or
// detaching: an attach reserves the volume before it exports it, so a live
// attach is never cut off. An export of a volume with no record, or on a
// backend that does not hold the volume, is removed. Removing an export
// already gone is success.
func (s *Service) RemoveStaleExport(ctx context.Context, e Export) error {
	b, ok := s.backends[e.Backend]
	if !ok {
		return &Error{Kind: ErrVolumeBackendAPIException, Rule: "backend_configured", Reason: fmt.Sprintf("no backend named %q is configured", e.Backend)}
	}
	if err := checkID(ErrVolumeNotFound, "volume", e.VolumeID); err != nil {
		return err
	}
	log := s.logger(ctx, "remove_stale_export", e.VolumeID).WithField("backend", e.Backend)
	return s.locked(ctx, e.VolumeID, func(ctx context.Context, lk volattach.Lock) error {
		v := Volume{ID: e.VolumeID, Backend: e.Backend}
		st, err := s.read(ctx, e.VolumeID)
		switch {
		case errors.Is(err, ErrVolumeNotFound):
		case err != nil:
			return err
		case st.vol.Backend == e.Backend:
			if err := exportRemovable(st); err != nil {
				return err
			}
			v = *st.vol
		}
		if err := b.RemoveExport(ctx, v); err != nil {
			return backendError(err, "volume %s: removing the stale export on %s failed", e.VolumeID, e.Backend)
		}
		log.Warn("stale export removed")
		return nil
	})
}

// exportRemovable refuses the removal of an export the volume may use.
func exportRemovable(st *state) error {
	switch st.vol.Status {
	case StatusAttaching, StatusReserved, StatusDetaching:
		return newError(ErrInvalidVolume, RuleExportUnused, "volume %s is %s: an operation may use its export", st.vol.ID, st.vol.Status)
	}
	if exportInUse(st, nil) {
		return newError(ErrInvalidVolume, RuleExportUnused, "volume %s has an attachment that may use its export", st.vol.ID)
	}
	return nil
}

// RecomputeStatus sets a volume's status and summary attach status to what
// its attachments derive (DeriveStatus), as a reconciler's repair of a
// volume no operation is working on: an attaching volume is unreserved
// (upstream unreserve_volume), a detaching one whose attachment is still
// attached is rolled back to in-use (roll_detaching), and any other
// attach-side status (available, in-use, reserved, detaching with nothing
// attached) follows the recompute_status row to the derived status
// (upstream volume_detached); each is one transition. Statuses outside the attach flow (creating, error,
// maintenance, ...) are left alone. A volume already consistent is not
// written. It reports whether it changed anything.
func (s *Service) RecomputeStatus(ctx context.Context, volumeID string) (bool, error) {
	st, err := s.transact(ctx, volumeID, "recompute_status", recomputeStatus)
	return st != nil, err
}

// recomputeStatus is RecomputeStatus's change.
func recomputeStatus(st *state, c *change) error {
	req := &Request{Volume: st.vol, Attachments: st.atts}
	derived, attach := req.derived()
	if derived == st.vol.Status && attach == st.vol.AttachStatus {
		return nil
	}
	switch st.vol.Status {
	case StatusAttaching, StatusDetaching, StatusAvailable, StatusInUse, StatusReserved:
	default:
		return nil
	}
	switch {
	case derived == st.vol.Status:
		// Only the summary attach status is off: no status transition.
		c.summarize()
		if attach == AttachDetached {
			c.dropAttachedMode()
		}
		return nil
	case st.vol.Status == StatusAttaching:
		return c.settle(EventUnreserve, Caller{})
	case st.vol.Status == StatusDetaching && derived == StatusInUse:
		if err := c.fireVolume(EventRollDetaching, req); err != nil {
			return err
		}
		c.summarize()
		return nil
	}
	return c.settle(EventRecomputeStatus, Caller{})
}
