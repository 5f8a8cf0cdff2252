// Package rbd keeps volumes as Ceph RBD images, driven with the rbd
// command-line tool (ceph-common), as upstream's Cinder RBD driver keeps
// them: one image per volume, named "volume-<id>", in one configured pool.
//
// There is no export: QEMU's own librbd client reaches the image through
// the monitors, so CreateExport and RemoveExport only check, ListExports
// lists none, and InitializeConnection returns upstream's rbd
// connection_info (name pool/image, hosts, ports, auth_enabled,
// auth_username, secret_type ceph, secret_uuid, cluster_name, volume_id).
// The hypervisor host holds the cephx key in a libvirt secret of its own
// (libvirt.WithCephSecret), named by secret_uuid, as upstream's
// rbd_secret_uuid does.
//
// Credentials. The backend reads its cephx key from a keyring file that
// only its user can read; the rbd tool is given the file's path (--keyring),
// never the key, so the key is on no command line, in no log and in no
// error.
//
// Multiattach. An image for a multiattach volume is created with the
// layering feature only: exclusive-lock (and object-map, fast-diff and
// journaling, which need it) would make two QEMUs writing one image take
// the lock from each other. Upstream disables the same features when a
// multiattach volume is created.
//
// Encryption is not offered on this backend (see storage/file and
// storage/iscsi).
package rbd
