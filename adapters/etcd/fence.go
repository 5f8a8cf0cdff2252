package etcd

import (
	"sync/atomic"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/volattach/volattach"
)

// fence proves ownership of a lock inside a transaction: the lock's own key
// must still exist with the create revision it had when the lock was won
// (the compare concurrency.Mutex.IsOwner returns). A holder whose lease
// expired has lost its key, so its late write fails the compare.
type fence struct {
	name string
	key  string
	rev  int64
	// held is shared by the lock and every copy of its fence: a Store that
	// commits a Txn releasing the lock (Txn.Releases) marks it there, so the
	// lock's Unlock needs no round trip. Nil for a fence without a lock.
	held *holding
}

// holding is the state a held lock shares with its fences.
type holding struct {
	// released is set once a commit deleted the lock key (Txn.Releases).
	released atomic.Bool
}

// markReleased records that a commit released the fence's lock.
func (f fence) markReleased() {
	if f.held != nil {
		f.held.released.Store(true)
	}
}

// releasedByCommit reports whether a commit released the fence's lock.
func (f fence) releasedByCommit() bool { return f.held != nil && f.held.released.Load() }

var _ volattach.Fence = fence{}

// LockName returns the name of the lock the fence belongs to.
func (f fence) LockName() string { return f.name }

// compare is the ownership compare to include in a Txn.
func (f fence) compare() clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(f.key), "=", f.rev)
}
