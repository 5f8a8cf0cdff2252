package volume

import (
	"context"

	"github.com/volattach/volattach"
)

// FailStuckCreation moves a volume stuck in creating to error (the
// create_failed row), as a reconciler's repair of a creation whose caller
// is gone: an API server whose last commit never landed, or that died
// between its two commits. Upstream's volume manager does the same for
// every volume it finds in creating when it starts (init_host, then
// _do_cleanup: "Detected volume stuck in creating status, setting to
// ERROR"), without asking the driver whether the storage exists; so does
// this, and DeleteVolume removes whatever storage was made.
//
// CreateVolume holds the volume's lock from its first commit to its last,
// so a volume read in creating under that lock has no creation running:
// the change is made under the lock, on a fresh read, as one commit
// fenced by it with its history entry. A volume whose creator still holds
// the lock is therefore waited for, and found created (or failed) by its
// creator. Any status but creating is left alone, without a lock or a
// write. It reports whether it changed the volume.
func (s *Service) FailStuckCreation(ctx context.Context, volumeID string) (bool, error) {
	var failed bool
	build := func(st *state, c *change) error {
		failed = st.vol.Status == StatusCreating
		if !failed {
			return nil
		}
		return c.fireVolume(EventCreateError, &Request{Volume: st.vol, Attachments: st.atts})
	}
	if changes, err := s.dryRun(ctx, volumeID, "fail_stuck_creation", build); err != nil || !changes {
		return false, err
	}
	err := s.locked(ctx, volumeID, func(ctx context.Context, lk volattach.Lock) error {
		_, err := s.applyReleasing(ctx, lk, volumeID, "fail_stuck_creation", build)
		return err
	})
	if err != nil || !failed {
		return false, err
	}
	s.logger(ctx, "fail_stuck_creation", volumeID).Warn("Detected volume stuck in creating status, setting to error")
	return true, nil
}
