// Package volattach holds the contracts shared by the volume side and the
// compute side of the attach flow: persisted records with revisions, the one
// guarded transaction every change is made in, distributed locks with fencing,
// history entries and notifications. The domain packages (fsm, volume,
// compute) use these interfaces; the adapters (adapters/etcd, ...) implement
// them. Nothing here does I/O.
package volattach
