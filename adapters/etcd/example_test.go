package etcd_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/adapters/etcd"
)

// A change made under a lock: the fence goes in the Txn, the history entry
// comes with the write, and a stale copy of the record cannot overwrite it.
func Example() {
	ctx := context.Background()
	srv, err := etcd.StartServer(ctx, etcd.ServerConfig{UnsafeNoFsync: true})
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	cli, err := etcd.NewClient(ctx, etcd.ClientConfig{Endpoints: srv.Endpoints()})
	if err != nil {
		panic(err)
	}
	defer cli.Close()
	store, locker := etcd.NewStore(cli), etcd.NewLocker(cli)

	w := &widget{ID: "vol-1", State: "new"}
	if _, err := store.Commit(ctx, volattach.Txn{Puts: []volattach.Record{w},
		History: []volattach.Transition{{Table: "test.widget", Entity: w.Key(), To: "new", Event: "create"}}}); err != nil {
		panic(err)
	}
	stale := *w

	lock, err := locker.Lock(ctx, volattach.VolumeLock(w.ID))
	if err != nil {
		panic(err)
	}
	h := move(w, "ready", "reserve")
	w.State = "ready"
	if _, err := store.Commit(ctx, volattach.Txn{Fences: []volattach.Fence{lock.Fence()}, Puts: []volattach.Record{w},
		History: []volattach.Transition{h}}); err != nil {
		panic(err)
	}
	if err := lock.Unlock(ctx); err != nil {
		panic(err)
	}

	stale.Note = "late"
	_, err = store.Commit(ctx, volattach.Txn{Puts: []volattach.Record{&stale}})
	fmt.Println("stale write refused:", errors.Is(err, volattach.ErrConflict))

	history, err := store.History(ctx, w.Key())
	if err != nil {
		panic(err)
	}
	for _, t := range history {
		fmt.Printf("%q -> %q on %s\n", t.From, t.To, t.Event)
	}
	// Output:
	// stale write refused: true
	// "" -> "new" on create
	// "new" -> "ready" on reserve
}
