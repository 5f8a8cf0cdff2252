// Package compute is the compute side of the attach flow (the role of
// OpenStack Nova's API, compute manager and block-device layer): instances
// and their block device mappings, the vm_state table, the attach and detach
// operations, and the virt interfaces a hypervisor adapter implements.
package compute
