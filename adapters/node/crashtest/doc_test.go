// Package crashtest_test kills a real host agent process with SIGKILL in the
// middle of an attach to a real libvirt guest, starts a new agent, and checks
// that the attach is finished (or undone) with nothing left drifting: the
// guest's live disks, the records in etcd and the storage exports agree.
package crashtest_test
