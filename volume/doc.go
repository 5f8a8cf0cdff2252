// Package volume is the volume side of the attach flow (the role of
// OpenStack Cinder's volume API and manager): volumes and their attachments,
// their transition tables, the derivation of a volume's status from its
// attachments, the Backend interface storage drivers implement, and the
// Service that applies every upstream rule in one guarded transaction.
package volume
