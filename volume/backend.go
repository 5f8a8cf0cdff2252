package volume

import "context"

// Backend is a storage driver (upstream: a Cinder volume driver). The Service
// calls it; adapters/storage implements it. Every method is idempotent: a
// volume that already exists, an export already there, a connection already
// initialised or already gone is success, so a resumed or retried operation
// never fails on its own earlier half-done work.
type Backend interface {
	// Name is the backend's name, for example "file", "iscsi" or "nbd".
	Name() string
	// CreateVolume creates the storage for v (v.ID, v.Size).
	CreateVolume(ctx context.Context, v Volume) error
	// DeleteVolume removes the storage of v and any export of it.
	DeleteVolume(ctx context.Context, v Volume) error
	// CreateExport makes v reachable for connector (upstream create_export).
	CreateExport(ctx context.Context, v Volume, c Connector) error
	// RemoveExport makes v unreachable (upstream remove_export).
	RemoveExport(ctx context.Context, v Volume) error
	// InitializeConnection grants connector access to the export and returns
	// the connection info the host uses to reach v.
	InitializeConnection(ctx context.Context, v Volume, c Connector) (ConnectionInfo, error)
	// TerminateConnection revokes connector's access to the export.
	TerminateConnection(ctx context.Context, v Volume, c Connector) error
}

// AttachHook is implemented by backends that customise attach (upstream
// BaseVD.attach_volume, a no-op by default). A failure puts the attachment in
// error_attaching.
type AttachHook interface {
	AttachVolume(ctx context.Context, v Volume, instanceUUID, host, mountpoint string) error
}

// DetachHook is implemented by backends that customise detach (upstream
// BaseVD.detach_volume).
type DetachHook interface {
	DetachVolume(ctx context.Context, v Volume, a Attachment) error
}

// ConnectorValidator is implemented by backends that check a connector
// before exporting (upstream driver.validate_connector). A failure is the
// caller's fault: InvalidInput (400), and nothing is exported or persisted.
type ConnectorValidator interface {
	ValidateConnector(c Connector) error
}

// ExportLister is implemented by backends that can say which volumes they
// export, so that a reconciler finds an export no attachment uses (upstream
// has no such listing: its exports leak when a detach half-fails). A
// backend without exports (a plain file) lists none.
type ExportLister interface {
	// ListExports returns the ids of the volumes the backend exports now,
	// sorted.
	ListExports(ctx context.Context) ([]string, error)
}

// ConnectionsRevoker is implemented by backends that can revoke every
// host's access to a volume at once: upstream's drivers get connector None
// from os-force_detach and many take it to mean all hosts. ForceDetach uses
// it when it knows no connector of the attachment.
type ConnectionsRevoker interface {
	TerminateAllConnections(ctx context.Context, v Volume) error
}
