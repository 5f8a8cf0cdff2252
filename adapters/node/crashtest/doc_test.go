// Package crashtest_test kills a real host agent process with SIGKILL in the
// middle of an attach to a real libvirt guest, starts a new agent, and checks
// that the attach is finished (or undone) with nothing left drifting: the
// guest's live disks, the records in etcd and the storage exports agree. It
// does so at every crash point on each backend of backends: the file
// backend, and RBD on the Ceph cluster of scripts/env-ceph.sh (the agent
// process learns which from VOLATTACH_CRASHTEST_BACKEND), and reports
// "SIGKILL crash points recovered (BACKEND): Y/Y" for each.
package crashtest_test
