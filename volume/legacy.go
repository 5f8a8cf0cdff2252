package volume

import (
	"context"
)

// The legacy flow's record-only transitions (reserve, unreserve,
// begin_detaching, roll_detaching) are conditional updates upstream
// (cinder/volume/api.py: volume.conditional_update, no lock): here each is
// one guarded commit compared on the revisions read, without the volume
// lock (commitGuarded), or a Change for a caller's own transaction. A
// conflict is retried under the lock.

// reserveTransition: cinder/volume/api.py reserve_volume.
func reserveTransition() transition {
	return transition{op: "reserve", build: func(st *state, c *change) error {
		return c.fireVolume(EventReserve, &Request{Volume: st.vol, Attachments: st.atts})
	}}
}

// Reserve marks a volume as being attached (upstream os-reserve,
// cinder/volume/api.py reserve_volume): available, or in-use when
// multiattach, becomes attaching. Otherwise InvalidVolume (400). One
// guarded commit, no lock (as upstream's conditional update).
func (s *Service) Reserve(ctx context.Context, volumeID string) error {
	_, err := s.commitGuarded(ctx, volumeID, reserveTransition())
	return err
}

// ReserveChange is Reserve as a Change, for the caller to commit.
func (s *Service) ReserveChange(ctx context.Context, volumeID string) (*Change, error) {
	return s.compose(ctx, volumeID, reserveTransition())
}

// Unreserve undoes Reserve (upstream os-unreserve): an attaching volume
// takes the status its attachments derive (in-use when one is attached,
// available when none is active). On a volume that is not attaching it does
// nothing, as upstream. One guarded commit, no lock.
//
// Upstream sets in-use when any attachment that is not detached exists,
// counting error_attaching ones; we use the derivation, so that unreserve
// and detach agree (see DeriveStatus).
func (s *Service) Unreserve(ctx context.Context, volumeID string) error {
	_, err := s.commitGuarded(ctx, volumeID, transition{op: "unreserve", build: unreserve})
	return err
}

// UnreserveChange is Unreserve as a Change (Empty where Unreserve does
// nothing).
func (s *Service) UnreserveChange(ctx context.Context, volumeID string) (*Change, error) {
	return s.compose(ctx, volumeID, transition{op: "unreserve", build: unreserve})
}

// unreserve fires unreserve, whose alternatives take the volume to the
// status its attachments derive, or nothing when the volume is not
// attaching or would stay attaching.
func unreserve(st *state, c *change) error {
	req := &Request{Volume: st.vol, Attachments: st.atts}
	if !statusTable.Can(st.vol.Status, EventUnreserve, req) {
		return nil // upstream unreserve_volume: "nothing to do"
	}
	if derived, _ := req.derived(); derived == st.vol.Status {
		return nil
	}
	return c.settle(EventUnreserve, Caller{})
}

// beginDetachingTransition: cinder/volume/api.py begin_detaching.
func beginDetachingTransition() transition {
	return transition{op: "begin_detaching", build: func(st *state, c *change) error {
		err := c.fireVolume(EventBeginDetaching, &Request{Volume: st.vol, Attachments: st.atts})
		if err != nil && st.vol.Migrating() {
			return nil // upstream begin_detaching: no error while migrating
		}
		return err
	}}
}

// BeginDetaching marks an in-use, attached volume as detaching (upstream
// os-begin_detaching). A volume being migrated is left alone without an
// error whatever its status (upstream: `if not (result or
// _is_volume_migrating(volume))`, which hides detaching from migrating
// volumes); any other refusal is InvalidVolume (400). One guarded commit,
// no lock.
func (s *Service) BeginDetaching(ctx context.Context, volumeID string) error {
	_, err := s.commitGuarded(ctx, volumeID, beginDetachingTransition())
	return err
}

// BeginDetachingChange is BeginDetaching as a Change (Empty for a
// migrating volume it leaves alone).
func (s *Service) BeginDetachingChange(ctx context.Context, volumeID string) (*Change, error) {
	return s.compose(ctx, volumeID, beginDetachingTransition())
}

// rollDetachingTransition: cinder/volume/api.py roll_detaching.
func rollDetachingTransition() transition {
	return transition{op: "roll_detaching", build: func(st *state, c *change) error {
		req := &Request{Volume: st.vol, Attachments: st.atts}
		if !statusTable.Can(st.vol.Status, EventRollDetaching, req) {
			return nil // upstream roll_detaching: conditional update, no error
		}
		return c.fireVolume(EventRollDetaching, req)
	}}
}

// RollDetaching returns a detaching volume to in-use (upstream
// os-roll_detaching), after a failed detach on the compute side. On any
// other status it does nothing, as upstream. One guarded commit, no lock.
func (s *Service) RollDetaching(ctx context.Context, volumeID string) error {
	_, err := s.commitGuarded(ctx, volumeID, rollDetachingTransition())
	return err
}

// RollDetachingChange is RollDetaching as a Change (Empty where
// RollDetaching does nothing).
func (s *Service) RollDetachingChange(ctx context.Context, volumeID string) (*Change, error) {
	return s.compose(ctx, volumeID, rollDetachingTransition())
}
