package node

import (
	"context"
	"errors"
	"fmt"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/adapters/etcd"
	"github.com/volattach/volattach/compute"
)

// serverConfig is the embedded server's configuration: the data directory
// and the store maintenance settings of Config.Etcd.
func (n *Node) serverConfig() etcd.ServerConfig {
	c := n.cfg.Etcd
	return etcd.ServerConfig{
		Dir:                c.DataDir,
		Compaction:         c.Compaction,
		QuotaBackendBytes:  c.QuotaBackendBytes,
		DefragmentInterval: c.DefragmentInterval,
	}
}

// startHistoryRetention runs the history retention loop (Config.Etcd.History)
// until ctx ends, unless both its bounds are off.
func (n *Node) startHistoryRetention(ctx context.Context) {
	r := n.cfg.Etcd.History
	if r.MaxAge < 0 && r.MaxEntries < 0 {
		return
	}
	if r.Running == nil {
		r.Running = RunningOperations(n.store)
	}
	n.retentionDone = make(chan struct{})
	go func() {
		defer close(n.retentionDone)
		n.store.RunHistoryRetention(ctx, r)
	}()
}

// waitHistoryRetention waits for the retention loop to stop, or for ctx.
func (n *Node) waitHistoryRetention(ctx context.Context) error {
	if n.retentionDone == nil {
		return nil
	}
	select {
	case <-n.retentionDone:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("still stopping: %w", ctx.Err())
	}
}

// RunningOperations returns an etcd.HistoryRetention.Running over store:
// the IDs of the attach and detach operations not at a terminal step yet.
// An operation whose record does not read counts as running, so that its
// trail is kept until someone repairs it.
func RunningOperations(store volattach.Store) func(context.Context) (map[string]bool, error) {
	return func(ctx context.Context) (map[string]bool, error) {
		ids, err := store.List(ctx, volattach.KindOperation, "", "", 0)
		if err != nil {
			return nil, err
		}
		running := map[string]bool{}
		for _, id := range ids {
			op := &compute.Operation{ID: id}
			switch err := store.Get(ctx, op); {
			case errors.Is(err, volattach.ErrNotFound):
			case errors.Is(err, volattach.ErrCorrupt):
				running[id] = true
			case err != nil:
				return nil, err
			case !op.Done():
				running[id] = true
			}
		}
		return running, nil
	}
}
