package etcd

import (
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
}

var _ volattach.Fence = fence{}

// LockName returns the name of the lock the fence belongs to.
func (f fence) LockName() string { return f.name }

// compare is the ownership compare to include in a Txn.
func (f fence) compare() clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(f.key), "=", f.rev)
}
