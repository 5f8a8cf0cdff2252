// Package etcd is volattach's persistence: records as JSON under one key
// prefix, every change one guarded Txn with its history entries (Store),
// distributed locks with fencing (Locker), a typed watch of the history for
// controllers (Store.Watch), a per-host work queue in place of an RPC cast
// (Queue), history retention by age and count (Store.PruneHistory), and an
// embedded etcd server that compacts, keeps a quota and defragments itself
// (StartServer, StartCluster; docs/operations.md); NewClient reaches an
// external cluster with TLS and auth.
//
// Lock order: a caller holding several locks takes them in
// volattach.LockOrder, the instance lock before the volume lock.
package etcd
