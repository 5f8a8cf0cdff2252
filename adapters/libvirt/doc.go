// Package libvirt is the hypervisor adapter: it implements compute.Driver
// against a real libvirtd through github.com/digitalocean/go-libvirt (pure
// Go, libvirtd's RPC protocol) and builds every XML document with
// libvirt.org/go/libvirtxml.
//
// The adapter mirrors upstream nova's libvirt driver for volume attach:
// protocol drivers keyed by driver_volume_type (file, iscsi, nbd, rbd) render
// the guest disk and connect the volume on the host (QEMU's own iSCSI and NBD
// initiators do the I/O, so connecting means at most a CHAP secret); attach
// is live and persistent when the guest runs or is paused and persistent
// only when it is shut off; detach removes the disk by its alias and waits
// for libvirt's device-removed event with upstream's retry policy.
//
// Every go-libvirt call is bounded by the caller's context and a per-call
// timeout. A call that times out drops the connection (closing its socket,
// so the abandoned call returns and cannot answer a later one); the next
// call, like any call after libvirtd went away, connects again.
//
// The rbd driver renders disk XML only; it is unit-tested against golden
// files and has NOT been verified against a Ceph cluster.
package libvirt
