package etcd_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/adapters/etcd"
)

// ownServer starts a member of the test's own (compacting or defragmenting
// the shared one would break other tests) and a client of it.
func ownServer(t *testing.T, cfg etcd.ServerConfig) (*etcd.Server, *clientv3.Client) {
	t.Helper()
	cfg.UnsafeNoFsync = true
	srv, err := etcd.StartServer(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	cli, err := etcd.NewClient(t.Context(), etcd.ClientConfig{Endpoints: srv.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return srv, cli
}

// poll calls done until it reports true, failing the test after waitTimeout.
func poll(t *testing.T, what string, done func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !done() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, waitTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The member's own auto-compaction (not a Compact call) removes old
// revisions, and a history watch from one of them ends with the typed
// CompactedError, not silence.
func TestAutoCompactionEndsAWatchFromACompactedRevision(t *testing.T) {
	_, cli := ownServer(t, etcd.ServerConfig{Compaction: etcd.Compaction{Mode: etcd.CompactPeriodic, Period: time.Second}})
	s := etcd.NewStore(cli)
	w := create(t, s, "old", "new")
	first := w.Revision()
	for _, st := range []string{"ready", "busy", "ready"} {
		h := move(w, st, st)
		w.State = st
		if _, err := s.Commit(t.Context(), volattach.Txn{Puts: []volattach.Record{w}, History: []volattach.Transition{h}}); err != nil {
			t.Fatal(err)
		}
	}
	poll(t, "auto-compaction past the first revision", func() bool {
		// Writing keeps the compactor's revision window moving.
		if _, err := cli.Put(t.Context(), "/tick", "x"); err != nil {
			t.Fatal(err)
		}
		_, err := cli.Get(t.Context(), "/tick", clientv3.WithRev(first))
		return errors.Is(err, rpctypes.ErrCompacted)
	})
	ch := s.Watch(t.Context(), first)
	var ev etcd.WatchEvent
	select {
	case ev = <-ch:
	case <-time.After(waitTimeout):
		t.Fatal("no event from a watch on an auto-compacted revision")
	}
	var ce *etcd.CompactedError
	if !errors.Is(ev.Err, etcd.ErrCompacted) || !errors.As(ev.Err, &ce) || ce.Requested != first || ce.Compacted < first {
		t.Fatalf("watch from auto-compacted revision %d: %+v, want a CompactedError past it", first, ev)
	}
	select {
	case _, ok := <-ch:
		if ok {
			t.Fatal("watch went on after reporting compaction")
		}
	case <-time.After(waitTimeout):
		t.Fatal("watch not closed after reporting compaction")
	}
}

// fill writes n values of size bytes under pfx and deletes them again, then
// compacts: the backend is left with free pages only a defragment returns.
// bbolt counts pages freed by a write as free only after later writes, so
// fill writes on until the member reports at least minFree bytes free.
func fill(t *testing.T, srv *etcd.Server, cli *clientv3.Client, pfx string, n, size int, minFree int64) {
	t.Helper()
	v := strings.Repeat("x", size)
	for i := range n {
		if _, err := cli.Put(t.Context(), pfx+strconv.Itoa(i), v); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := cli.Delete(t.Context(), pfx, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(t.Context(), resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	poll(t, "compacted pages counted free", func() bool {
		if _, err := cli.Put(t.Context(), "/tick", "x"); err != nil {
			t.Fatal(err)
		}
		sz, err := srv.Size()
		if err != nil {
			t.Fatal(err)
		}
		return sz.Bytes-sz.InUse >= minFree
	})
}

func TestDefragmentShrinksTheBackendFile(t *testing.T) {
	srv, cli := ownServer(t, etcd.ServerConfig{DefragmentInterval: -1})
	fill(t, srv, cli, "/junk/", 200, 32<<10, 4<<20)
	before, err := srv.Size()
	if err != nil {
		t.Fatal(err)
	}
	if before.Bytes-before.InUse < 4<<20 {
		t.Fatalf("setup: only %d of %d bytes free after deleting 6 MiB", before.Bytes-before.InUse, before.Bytes)
	}
	if err := srv.Defragment(t.Context()); err != nil {
		t.Fatal(err)
	}
	after, err := srv.Size()
	if err != nil {
		t.Fatal(err)
	}
	if after.Bytes > before.Bytes/2 {
		t.Fatalf("defragment: file %d -> %d bytes (in use %d)", before.Bytes, after.Bytes, after.InUse)
	}
}

// The member defragments itself, on its own schedule, once enough of its
// file is free.
func TestMemberDefragmentsPeriodically(t *testing.T) {
	srv, cli := ownServer(t, etcd.ServerConfig{DefragmentInterval: 50 * time.Millisecond})
	fill(t, srv, cli, "/junk/", 200, 32<<10, 0)
	poll(t, "the file shrinking to its data", func() bool {
		if _, err := cli.Put(t.Context(), "/tick", "x"); err != nil {
			t.Fatal(err)
		}
		sz, err := srv.Size()
		if err != nil {
			t.Fatal(err)
		}
		return sz.Bytes < 4<<20
	})
}

func TestDefragmentOfAStoppedMemberIsRefused(t *testing.T) {
	srv, _ := ownServer(t, etcd.ServerConfig{})
	srv.Stop()
	if err := srv.Defragment(context.Background()); !errors.Is(err, etcd.ErrNotRunning) {
		t.Fatalf("Defragment of a stopped member: %v", err)
	}
	if _, err := srv.Size(); !errors.Is(err, etcd.ErrNotRunning) {
		t.Fatalf("Size of a stopped member: %v", err)
	}
}

// A member whose backend reached its quota refuses writes (NOSPACE); once
// the data is deleted and compacted, its defragment lifts the alarm and
// writes resume without an operator.
func TestDefragmentLiftsANoSpaceAlarmOnceUnderQuota(t *testing.T) {
	srv, cli := ownServer(t, etcd.ServerConfig{QuotaBackendBytes: 4 << 20, DefragmentInterval: -1})
	v := strings.Repeat("x", 64<<10)
	var err error
	for i := 0; err == nil; i++ {
		if i > 1000 {
			t.Fatal("no NOSPACE after 64 MiB written under a 4 MiB quota")
		}
		_, err = cli.Put(t.Context(), "/junk/"+strconv.Itoa(i), v)
	}
	if !errors.Is(err, rpctypes.ErrNoSpace) {
		t.Fatalf("write over the quota: %v, want NOSPACE", err)
	}
	resp, err := cli.Delete(t.Context(), "/junk/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(t.Context(), resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	if err := srv.Defragment(t.Context()); err != nil {
		t.Fatal(err)
	}
	alarms, err := cli.AlarmList(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(alarms.Alarms) != 0 {
		t.Fatalf("alarms after the defragment: %v", alarms.Alarms)
	}
	if _, err := cli.Put(t.Context(), "/after", "x"); err != nil {
		t.Fatalf("write after the alarm was lifted: %v", err)
	}
}
