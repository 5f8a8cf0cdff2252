// Package node wires one volattach hypervisor host together, so that an
// embedder and the examples do not write it twice: the etcd client (an
// embedded server by default, or an external cluster), the Store, Locker
// and Queue over it, the volume side (volume.Service with the storage
// backends enabled), the libvirt adapter, the compute API, and the host
// agent (compute.Manager) and its reconciler, and the history retention
// loop (docs/operations.md), running in goroutines. Start builds them in
// that order and Close stops them in reverse.
//
// The package holds no business rule: those live in volume and compute.
// Its one addition is RegisterGuest, which records a guest made outside
// volattach as an instance, since there is no boot here.
package node
