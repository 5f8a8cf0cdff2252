// Package compute is the compute side of the attach flow (the role of
// OpenStack Nova's API, compute manager and block-device layer): instances
// and their block device mappings, the compute.vm_state table, the attach
// and detach operations as checkpointed sagas with their step tables, the
// API that gates and hands them to the instance's host (API), the host
// agent that runs them under the instance's fenced lock (Manager), and the
// interfaces it needs from the outside: the volume side (VolumeAPI), the
// host hand-off (HostQueue) and the hypervisor (Driver, VolumeDriver).
package compute
