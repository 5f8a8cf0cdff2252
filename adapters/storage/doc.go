// Package storage holds what the volume backends in its sub-packages share:
// the errors a caller can act on, and the validation of the volume ids and
// connectors every backend receives. The backends themselves live in
// storage/file (qemu-img files), storage/iscsi (tgtd through tgtadm) and
// storage/nbd (qemu-nbd); each implements volume.Backend.
package storage
