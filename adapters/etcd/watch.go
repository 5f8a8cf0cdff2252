package etcd

import (
	"context"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/volattach/volattach"
)

// WatchEvent is one item of a history watch: a transition, or an error.
type WatchEvent struct {
	// Transition is the history entry, with the revision of its commit.
	Transition volattach.Transition
	// Err is set instead for an entry that does not decode (a *CorruptError;
	// the stream goes on) or for the end of the stream: a *CompactedError
	// (ErrCompacted), or ErrClientClosed when the Store's client was
	// closed, is the last event before the channel closes.
	Err error
}

// Watch streams every transition committed at revision fromRev or later, in
// commit order (entries of one commit in their Txn.History order), until ctx
// ends; then the channel closes. fromRev <= 0 means from now: the current
// revision is read before Watch returns.
//
// The stream survives lost connections, leader changes and server restarts:
// it resumes from the revision after the last one delivered, so no event is
// lost, repeated or reordered. If that revision has been compacted away the
// stream ends with a *CompactedError: re-read the state and watch again from
// a newer revision. If the Store's client is closed the stream ends with
// ErrClientClosed.
func (s *Store) Watch(ctx context.Context, fromRev int64) <-chan WatchEvent {
	out := make(chan WatchEvent, 16)
	if fromRev <= 0 {
		rev, err := s.Revision(ctx)
		if err != nil {
			out <- WatchEvent{Err: err}
			close(out)
			return out
		}
		fromRev = rev + 1
	}
	go s.watch(ctx, fromRev, out)
	return out
}

// watchBackoff paces re-watching after the stream broke in a way the etcd
// client does not resume by itself (leader loss, server-side cancel).
const (
	watchBackoffMin = 50 * time.Millisecond
	watchBackoffMax = 2 * time.Second
)

func (s *Store) watch(ctx context.Context, next int64, out chan<- WatchEvent) {
	defer close(out)
	send := func(ev WatchEvent) bool {
		select {
		case out <- ev:
			return true
		case <-ctx.Done():
			return false
		}
	}
	backoff := watchBackoffMin
	for ctx.Err() == nil {
		// WithRequireLeader: a member cut off from the quorum cancels the
		// watch instead of silently serving nothing; we then re-watch,
		// usually through another member.
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		wch := s.cli.Watch(wctx, s.o.historyPrefix(), clientv3.WithPrefix(), clientv3.WithRev(next), clientv3.WithFilterDelete())
		for resp := range wch {
			if resp.CompactRevision != 0 {
				cancel()
				send(WatchEvent{Err: &CompactedError{Requested: next, Compacted: resp.CompactRevision}})
				return
			}
			if err := resp.Err(); err != nil {
				s.o.log.WithError(err).WithField("revision", next).Info("history watch interrupted; resuming")
				break
			}
			backoff = watchBackoffMin
			for _, ev := range resp.Events {
				if ev.Type != mvccpb.PUT {
					continue
				}
				t, err := decodeTransition(ev.Kv)
				if !send(WatchEvent{Transition: t, Err: err}) {
					cancel()
					return
				}
			}
			// Every event of a revision comes in one response, so the
			// next revision to ask for after a break is the one after
			// the last delivered.
			if n := len(resp.Events); n > 0 {
				next = resp.Events[n-1].Kv.ModRevision + 1
			}
		}
		cancel()
		if ctx.Err() != nil {
			return
		}
		if s.cli.Ctx().Err() != nil {
			// A closed client never delivers again: end the stream
			// instead of re-watching it for ever.
			send(WatchEvent{Err: fmt.Errorf("etcd: history watch from revision %d: %w", next, ErrClientClosed)})
			return
		}
		timer := time.NewTimer(backoff)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return
		}
		backoff = min(2*backoff, watchBackoffMax)
	}
}
