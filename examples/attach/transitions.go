package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/adapters/etcd"
)

// transitions prints every transition the etcd history watch delivers, as
// it arrives, and lets the demo wait until everything committed so far has
// been printed before it goes on (so the output stays in order).
type transitions struct {
	out     *console
	store   *etcd.Store
	from    int64 // the first revision watched
	mu      sync.Mutex
	printed int
	changed chan struct{} // closed and replaced on every print
	done    chan struct{}
}

// watchTransitions starts printing the transitions committed from now on.
func watchTransitions(ctx context.Context, out *console, store *etcd.Store) (*transitions, error) {
	rev, err := store.Revision(ctx)
	if err != nil {
		return nil, err
	}
	w := &transitions{out: out, store: store, from: rev + 1, changed: make(chan struct{}), done: make(chan struct{})}
	events := store.Watch(ctx, w.from)
	go w.print(events)
	return w, nil
}

func (w *transitions) print(events <-chan etcd.WatchEvent) {
	defer close(w.done)
	for ev := range events {
		if ev.Err != nil {
			w.out.line("watch", "%v", ev.Err)
			continue
		}
		w.out.transition(ev.Transition)
		w.mu.Lock()
		w.printed++
		close(w.changed)
		w.changed = make(chan struct{})
		w.mu.Unlock()
	}
}

// flushTimeout bounds how long the demo waits for the watch to deliver
// what is already committed.
const flushTimeout = 30 * time.Second

// flush waits until every transition committed so far has been printed.
func (w *transitions) flush(ctx context.Context) error {
	all, err := w.store.HistorySince(ctx, w.from)
	if err != nil {
		return err
	}
	deadline := time.NewTimer(flushTimeout)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		printed, changed := w.printed, w.changed
		w.mu.Unlock()
		if printed >= len(all) {
			return nil
		}
		select {
		case <-changed:
		case <-deadline.C:
			return fmt.Errorf("the etcd watch delivered %d of %d transitions within %v", printed, len(all), flushTimeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// entityKinds are the short names of the record kinds in the output.
var entityKinds = map[volattach.Kind]string{
	volattach.KindVolume: "vol", volattach.KindAttachment: "att", volattach.KindInstance: "inst",
	volattach.KindMapping: "bdm", volattach.KindOperation: "op",
}

// entity names a record shortly: its kind and the first eight characters
// of its id (a mapping's id starts with its volume's).
func entity(k volattach.Key) string {
	id := k.ID
	if len(id) > 8 {
		id = id[:8]
	}
	kind, ok := entityKinds[k.Kind]
	if !ok {
		kind = string(k.Kind)
	}
	return kind + " " + id
}
