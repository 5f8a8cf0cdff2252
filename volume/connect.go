package volume

import (
	"context"
	"maps"

	"github.com/volattach/volattach"
)

// RuleBackendConnector names a connector the backend refused (upstream
// validate_connector, InvalidConnectorException -> InvalidInput).
const RuleBackendConnector = "backend_accepts_connector"

// InitializeConnection exports the volume to the host of connector and
// returns the connection_info the host uses to reach it (upstream
// os-initialize_connection). The status is unchanged; a volume in
// maintenance is refused (InvalidVolume, 400). A backend failure removes the
// export again (unless another attachment still uses it) and is a
// VolumeBackendAPIException (500). Nothing is persisted: upstream keeps no
// record of a legacy connection either (the compute side saves it).
func (s *Service) InitializeConnection(ctx context.Context, volumeID string, connector Connector) (ConnectionInfo, error) {
	check, err := s.connectionCheck(ctx, volumeID, connector)
	if err != nil {
		return ConnectionInfo{}, err
	}
	var info ConnectionInfo
	err = s.locked(ctx, volumeID, func(ctx context.Context, lk volattach.Lock) error {
		var err error
		info, err = s.initializeLocked(ctx, volumeID, connector, check)
		return err
	})
	return info, err
}

// connectionCheck validates connector and returns initialize_connection's
// guards as a check of a read, having run them once on an unlocked read
// (a refusal costs no lock).
func (s *Service) connectionCheck(ctx context.Context, volumeID string, connector Connector) (func(st *state) (Backend, error), error) {
	if err := connector.Validate(); err != nil {
		return nil, err
	}
	check := func(st *state) (Backend, error) {
		req := &Request{Volume: st.vol, Attachments: st.atts}
		if _, err := statusTable.Next(st.vol.Status, EventInitializeConnection, req); err != nil {
			return nil, err
		}
		b, err := s.backend(st.vol)
		if err != nil {
			return nil, err
		}
		return b, validateForBackend(b, connector)
	}
	return s.precheck(ctx, volumeID, check)
}

// precheck runs check once on an unlocked read, so that a refusal costs no
// lock, and returns it for the read under the lock.
func (s *Service) precheck(ctx context.Context, volumeID string, check func(st *state) (Backend, error)) (func(st *state) (Backend, error), error) {
	st, err := s.read(ctx, volumeID)
	if err != nil {
		return nil, err
	}
	if _, err := check(st); err != nil {
		return nil, err
	}
	return check, nil
}

// initializeLocked is initialize_connection under the volume lock: a fresh
// read, the guards again, then the export and the connection.
func (s *Service) initializeLocked(ctx context.Context, volumeID string, connector Connector, check func(st *state) (Backend, error)) (ConnectionInfo, error) {
	st, err := s.read(ctx, volumeID)
	if err != nil {
		return ConnectionInfo{}, err
	}
	b, err := check(st)
	if err != nil {
		return ConnectionInfo{}, err
	}
	return s.connect(ctx, b, st, nil, connector, legacyAccessMode(st.vol, connector))
}

// legacyAccessMode is the access_mode upstream's _parse_connection_options
// puts in connection_info: the recorded attached_mode when there is one,
// else ro for a read-only volume, else rw. The connector's mode is not
// read (the attach mode is os-attach's argument, not the connector's).
func legacyAccessMode(v *Volume, _ Connector) string {
	switch {
	case v.AdminMetadata[MetaAttachedMode] != "":
		return v.AdminMetadata[MetaAttachedMode]
	case v.ReadOnly():
		return ModeRO
	}
	return ModeRW
}

// validateForBackend runs the backend's connector check, if it has one.
func validateForBackend(b Backend, c Connector) error {
	v, ok := b.(ConnectorValidator)
	if !ok {
		return nil
	}
	if err := v.ValidateConnector(c); err != nil {
		return &Error{Kind: ErrInvalidInput, Rule: RuleBackendConnector, Reason: "connector refused by backend " + b.Name(), Err: err}
	}
	return nil
}

// connect creates the export and initialises the connection for c
// (upstream manager.py initialize_connection / _connection_create). On
// failure it removes the export unless another attachment than self still
// uses it, and returns a VolumeBackendAPIException (500).
func (s *Service) connect(ctx context.Context, b Backend, st *state, self *Attachment, c Connector, mode string) (ConnectionInfo, error) {
	v := st.vol
	log := s.logger(ctx, "initialize_connection", v.ID)
	fail := func(err error, what string) (ConnectionInfo, error) {
		log.WithError(err).Error(what)
		if !exportInUse(st, self) {
			if rerr := b.RemoveExport(ctx, *v); rerr != nil {
				log.WithError(rerr).Warn("could not remove the export after a failed connection")
			}
		}
		return ConnectionInfo{}, backendError(err, "volume %s: %s", v.ID, what)
	}
	if err := b.CreateExport(ctx, *v, c); err != nil {
		return fail(err, "create export of volume failed")
	}
	info, err := b.InitializeConnection(ctx, *v, c)
	if err != nil {
		return fail(err, "driver initialize connection failed")
	}
	data := make(map[string]string, len(info.Data)+1)
	maps.Copy(data, info.Data)
	data[DataAccessMode] = mode
	info.Data = data
	log.WithField("connection_info", info.String()).Debug("connection initialized")
	return info, nil
}

// exportInUse reports whether an attachment other than self may be using
// the volume's export: one attaching, attached or in error_detaching, or
// one holding connection info.
func exportInUse(st *state, self *Attachment) bool {
	for _, a := range st.atts {
		if self != nil && a.ID == self.ID {
			continue
		}
		switch a.AttachStatus {
		case AttachAttaching, AttachAttached, AttachErrorDetaching:
			return true
		}
		if a.ConnectionInfo != nil && a.AttachStatus != AttachErrorAttaching {
			return true
		}
	}
	return false
}

// TerminateConnection revokes the host's access (upstream
// os-terminate_connection), unless another attachment of the multiattach
// volume on the same host still uses it (host_share.go), then unreserves the volume as upstream does (an
// attaching volume takes its derived status; otherwise nothing changes),
// and removes the export when the volume ends available with no attachment
// using it (a rolled-back attach). A backend failure is a
// VolumeBackendAPIException (500).
func (s *Service) TerminateConnection(ctx context.Context, volumeID string, connector Connector) error {
	check, err := s.terminateCheck(ctx, volumeID, connector)
	if err != nil {
		return err
	}
	return s.locked(ctx, volumeID, func(ctx context.Context, lk volattach.Lock) error {
		st, err := s.read(ctx, volumeID)
		if err != nil {
			return err
		}
		b, err := check(st)
		if err != nil {
			return err
		}
		if err := s.terminate(ctx, b, st, connector); err != nil {
			return err
		}
		st, err = s.apply(ctx, lk, volumeID, "terminate_connection", unreserve)
		if err != nil {
			return err
		}
		// An attach that rolled back (the volume is available again and no
		// attachment uses the export) leaves no export behind. Upstream
		// leaves it until the volume is deleted; a failure here is the
		// caller's to retry (this call is idempotent), and the reconciler
		// removes an export no attachment uses in any case.
		if st.vol.Status == StatusAvailable && !exportInUse(st, nil) {
			if err := b.RemoveExport(ctx, *st.vol); err != nil {
				return backendError(err, "volume %s: remove export after terminate_connection", volumeID)
			}
		}
		return nil
	})
}

// terminateCheck validates connector and returns terminate_connection's
// guards as a check of a read, having run them once on an unlocked read.
func (s *Service) terminateCheck(ctx context.Context, volumeID string, connector Connector) (func(st *state) (Backend, error), error) {
	if err := connector.Validate(); err != nil {
		return nil, err
	}
	caller := s.callerOf(ctx, Caller{})
	check := func(st *state) (Backend, error) {
		req := &Request{Volume: st.vol, Attachments: st.atts, Caller: caller}
		if err := s.judgeDeletion(ctx, req, ""); err != nil {
			return nil, err
		}
		if _, err := statusTable.Next(st.vol.Status, EventTerminateConnection, req); err != nil {
			return nil, err
		}
		return s.backend(st.vol)
	}
	return s.precheck(ctx, volumeID, check)
}

// terminate revokes the host's access on the backend, unless another
// attachment on the same host uses the connection (host_share.go).
func (s *Service) terminate(ctx context.Context, b Backend, st *state, connector Connector) error {
	log := s.logger(ctx, "terminate_connection", st.vol.ID)
	if legacyHostShared(st, connector.Host) {
		log.WithField("host", connector.Host).Info("another attachment on this host uses the connection; not terminating it")
		return nil
	}
	if err := b.TerminateConnection(ctx, *st.vol, connector); err != nil {
		log.WithError(err).Error("terminate volume connection failed")
		return backendError(err, "volume %s: terminate volume connection failed", st.vol.ID)
	}
	return nil
}
