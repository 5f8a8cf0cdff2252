package compute

import "context"

// HostQueue hands operations from the compute API to the agent of the
// instance's host and carries the result back (DESIGN section 5: where
// upstream casts an RPC to the compute host, the API queues the operation
// under the host's prefix and the host agent takes it). The payload is the
// operation id and the result a JSON OperationResult; the operation itself
// lives in the Store. Every method is in basic types, so an adapter needs
// nothing from this package: adapters/etcd's Queue implements it, with
// claims bound to the agent's lease so a dead agent's work is taken again.
type HostQueue interface {
	// Put queues payload as item id for host. Putting the same id with the
	// same payload again is success.
	Put(ctx context.Context, host, id string, payload []byte) error
	// Next blocks until host has an item no agent has claimed, claims it
	// for this agent and returns it, oldest first; or returns ctx's error.
	// A claim belongs to the agent: one goroutine per agent calls Next.
	Next(ctx context.Context, host string) (id string, payload []byte, err error)
	// Done records result for item id and removes it, if this agent still
	// holds its claim (otherwise an error matching volattach.ErrLockLost).
	Done(ctx context.Context, host, id string, result []byte) error
	// Release gives up this agent's claim without a result, so the item is
	// taken again.
	Release(ctx context.Context, host, id string) error
	// Wait blocks until item id of host has a result and returns it, or
	// until ctx ends.
	Wait(ctx context.Context, host, id string) ([]byte, error)
}

// ServiceGroup tells whether a compute host's agent is alive (upstream
// servicegroup API service_is_up). The API refuses a detach whose host is
// down (ComputeServiceUnavailable, 409, naming no host) rather than queue
// work nobody runs.
type ServiceGroup interface {
	// IsUp reports whether host's agent is alive.
	IsUp(ctx context.Context, host string) (bool, error)
}
