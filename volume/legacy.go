package volume

import (
	"context"
)

// Reserve marks a volume as being attached (upstream os-reserve,
// cinder/volume/api.py reserve_volume): available, or in-use when
// multiattach, becomes attaching. Otherwise InvalidVolume (400).
func (s *Service) Reserve(ctx context.Context, volumeID string) error {
	_, err := s.transact(ctx, volumeID, "reserve", func(st *state, c *change) error {
		return c.fireVolume(EventReserve, &Request{Volume: st.vol, Attachments: st.atts})
	})
	return err
}

// Unreserve undoes Reserve (upstream os-unreserve): an attaching volume
// takes the status its attachments derive (in-use when one is attached,
// available when none is active). On a volume that is not attaching it does
// nothing, as upstream.
//
// Upstream sets in-use when any attachment that is not detached exists,
// counting error_attaching ones; we use the derivation, so that unreserve
// and detach agree (see DeriveStatus).
func (s *Service) Unreserve(ctx context.Context, volumeID string) error {
	_, err := s.transact(ctx, volumeID, "unreserve", unreserve)
	return err
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

// BeginDetaching marks an in-use, attached volume as detaching (upstream
// os-begin_detaching). A volume being migrated is left alone without an
// error whatever its status (upstream: `if not (result or
// _is_volume_migrating(volume))`, which hides detaching from migrating
// volumes); any other refusal is InvalidVolume (400).
func (s *Service) BeginDetaching(ctx context.Context, volumeID string) error {
	_, err := s.transact(ctx, volumeID, "begin_detaching", func(st *state, c *change) error {
		err := c.fireVolume(EventBeginDetaching, &Request{Volume: st.vol, Attachments: st.atts})
		if err != nil && st.vol.Migrating() {
			return nil // upstream begin_detaching: no error while migrating
		}
		return err
	})
	return err
}

// RollDetaching returns a detaching volume to in-use (upstream
// os-roll_detaching), after a failed detach on the compute side. On any
// other status it does nothing, as upstream.
func (s *Service) RollDetaching(ctx context.Context, volumeID string) error {
	_, err := s.transact(ctx, volumeID, "roll_detaching", func(st *state, c *change) error {
		req := &Request{Volume: st.vol, Attachments: st.atts}
		if !statusTable.Can(st.vol.Status, EventRollDetaching, req) {
			return nil // upstream roll_detaching: conditional update, no error
		}
		return c.fireVolume(EventRollDetaching, req)
	})
	return err
}
