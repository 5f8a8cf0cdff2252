// Package compute is the compute side of the attach flow (the role of
// OpenStack Nova's API, compute manager and block-device layer): instances
// and their block device mappings, the compute.vm_state table, the attach
// and detach operations as checkpointed sagas with their step tables, the
// API that gates and hands them to the instance's host (API), the host
// agent that runs them under the instance's fenced lock (Manager), and the
// interfaces it needs from the outside: the volume side (VolumeAPI), the
// host hand-off (HostQueue) and the hypervisor (Driver, VolumeDriver).
//
// # File map
//
// The files fall in four groups, by role:
//
//   - Records, tables and ports: instance.go, bdm.go, operation.go,
//     result.go and errors.go (the records and the upstream exceptions);
//     vmstate.go and vmstate_table.go (the compute.vm_state table),
//     steps_table.go (the attach and detach step tables), tables.go;
//     devicename.go and devicepath.go (device names as upstream chooses
//     them); volumeapi.go, volume_changes.go, hostqueue.go and virt.go
//     (the ports to the volume side, its transitions as values for the
//     compute side's own commits, the host hand-off and the hypervisor);
//     notify.go; maps.go
//     and uuid.go (small helpers).
//   - The front half, which gates requests and hands them to a host:
//     api.go, api_attach.go, api_detach.go; handoff.go (marking an
//     operation queued, when its first commit did not); reconcile.go (API.reconcile,
//     the per-operation recovery a stopped API call needs);
//     attachment_usage.go (the volume side's attachment_deletion_allowed
//     question).
//   - The host agent and the saga: manager.go (Manager.Handle under the
//     instance lock), runner.go, runner_attach.go and runner_detach.go (the
//     steps, checkpointed where a crash needs it: docs/architecture.md),
//     host_share.go (a multiattach volume's host
//     connection kept while another guest on the host uses it).
//   - Repair: reconciler.go and reconciler_ops.go (the Reconciler's loop
//     and its per-operation resumes), audit.go, audit_state.go,
//     audit_checks.go and audit_repair.go (findings and their repairs).
package compute
