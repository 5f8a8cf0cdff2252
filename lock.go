package volattach

import "context"

// Locker hands out distributed mutual-exclusion locks by name. Lock names are
// "instance/<uuid>" and "volume/<id>"; see LockOrder.
type Locker interface {
	// Lock blocks until it holds the named lock, ctx is done, or the lock
	// service fails. Each Lock call gets a session of its own, so two holders
	// in one process never share ownership.
	Lock(ctx context.Context, name string) (Lock, error)
}

// Lock is one held lock. Holding it is not enough for mutual exclusion: every
// write made under it carries its Fence, so a holder whose lease expired
// cannot write late.
type Lock interface {
	// Name is the lock's name.
	Name() string
	// Fence is the ownership compare to put in every Txn made under the lock.
	Fence() Fence
	// Lost is closed when the lock's lease expires or is revoked.
	Lost() <-chan struct{}
	// Unlock releases the lock if, and only if, it is still held by this
	// holder: a stale unlock never releases a lock someone else now holds.
	// After a commit that released the lock (Txn.Releases) it only frees
	// the holder's resources and returns nil.
	Unlock(ctx context.Context) error
}

// Fence is an opaque ownership compare produced by a Lock and understood by the
// Store of the same adapter.
type Fence interface {
	// LockName is the name of the lock the fence proves ownership of.
	LockName() string
}

// LockOrder is the only order in which one caller may hold several locks:
// the instance first, then the volume. Two operations that follow it cannot
// deadlock.
const LockOrder = "instance before volume"

// InstanceLock returns the lock name for an instance (upstream
// @utils.synchronized(instance.uuid), process-local there).
func InstanceLock(instanceUUID string) string { return "instance/" + instanceUUID }

// VolumeLock returns the lock name for a volume (upstream
// @coordination.synchronized('{volume_id}')). Attach and detach share it.
func VolumeLock(volumeID string) string { return "volume/" + volumeID }
