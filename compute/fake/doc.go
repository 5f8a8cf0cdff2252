// Package fake holds test doubles for the compute side (as upstream has
// nova.virt.fake): an in-memory hypervisor implementing compute.Driver, and
// wrappers that inject faults into a compute.VolumeAPI and a
// volattach.Store. Every double can fail, or hang until released, at any
// named step, so tests can drive the attach and detach operations into
// each of their failure points.
package fake
