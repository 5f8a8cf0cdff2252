package etcd_test

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/adapters/etcd"
)

// failoverWriter makes one guarded transition after another on one record
// and remembers every one that was acknowledged.
type failoverWriter struct {
	s    *etcd.Store
	id   string
	mu   sync.Mutex
	acks []volattach.Transition // acknowledged, with their commit revisions
	errs int                    // failed attempts (retried)
}

func (fw *failoverWriter) acked() int {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	return len(fw.acks)
}

// run writes until stop is closed. A failed attempt is retried after
// re-reading: if its outcome was unknown and it did apply, the record says
// so and the writer moves on without counting it as acknowledged.
func (fw *failoverWriter) run(ctx context.Context, stop <-chan struct{}) {
	retry := time.NewTimer(0)
	defer retry.Stop()
	for n := 1; ; n++ {
		for {
			select {
			case <-stop:
				return
			default:
			}
			err := fw.step(ctx, n)
			if err == nil || errors.Is(err, errApplied) {
				break
			}
			fw.mu.Lock()
			fw.errs++
			fw.mu.Unlock()
			// Back off a little while the cluster re-elects.
			retry.Reset(20 * time.Millisecond)
			select {
			case <-stop:
				return
			case <-retry.C:
			}
		}
	}
}

var errApplied = errors.New("applied with an unknown outcome")

func (fw *failoverWriter) step(ctx context.Context, n int) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cur := &widget{ID: fw.id}
	if err := fw.s.Get(ctx, cur); err != nil {
		return err
	}
	note := strconv.Itoa(n)
	if cur.Note == note {
		return errApplied
	}
	next := *cur
	next.Note = note
	next.State = widgetStates[1+n%2]
	h := []volattach.Transition{move(cur, next.State, note)}
	if _, err := fw.s.Commit(ctx, volattach.Txn{Puts: []volattach.Record{&next}, History: h}); err != nil {
		return err
	}
	fw.mu.Lock()
	fw.acks = append(fw.acks, h[0])
	fw.mu.Unlock()
	return nil
}

// TestClusterFailover: on a 3-member cluster, guarded transitions keep
// succeeding while a follower is down and after the leader is killed and a
// new one elected; each stopped member rejoins on its data directory and
// holds every acknowledged transition. (Stopping a follower and then the
// leader together would leave one member of three, without quorum: each
// member is restarted before the next one is stopped.)
func TestClusterFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-member cluster")
	}
	ctx := t.Context()
	c, err := etcd.StartCluster(ctx, 3, etcd.ServerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	cli, err := etcd.NewClient(ctx, etcd.ClientConfig{Endpoints: c.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	s := etcd.NewStore(cli, etcd.WithPrefix("/failover/"))
	create(t, s, "fo", "new")

	fw := &failoverWriter{s: s, id: "fo"}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		fw.run(ctx, stop)
	}()
	stopped := false
	stopWriter := func() {
		if !stopped {
			stopped = true
			close(stop)
			<-done
		}
	}
	t.Cleanup(stopWriter)
	progress := func(what string) {
		t.Helper()
		target := fw.acked() + 15
		deadline := time.Now().Add(2 * waitTimeout)
		for fw.acked() < target {
			if time.Now().After(deadline) {
				t.Fatalf("%s: transitions stalled at %d acknowledged", what, fw.acked())
			}
			time.Sleep(10 * time.Millisecond) // polling with a deadline
		}
	}
	waitLeader := func() int {
		t.Helper()
		lctx, cancel := context.WithTimeout(ctx, 2*waitTimeout)
		defer cancel()
		i, err := c.WaitLeader(lctx)
		if err != nil {
			t.Fatal(err)
		}
		return i
	}
	restart := func(i int) {
		t.Helper()
		rctx, cancel := context.WithTimeout(ctx, 2*waitTimeout)
		defer cancel()
		if err := c.Members[i].Restart(rctx); err != nil {
			t.Fatalf("member %d did not rejoin: %v", i, err)
		}
	}

	progress("healthy cluster")
	leader := waitLeader()
	follower := (leader + 1) % 3
	c.Members[follower].Kill()
	progress("follower down")
	restart(follower)
	progress("follower rejoined")

	leader = waitLeader()
	c.Members[leader].Kill()
	newLeader := waitLeader()
	if newLeader == leader {
		t.Fatalf("member %d still leader after being killed", leader)
	}
	progress("after re-election")
	restart(leader)
	progress("old leader rejoined")
	stopWriter()

	fw.mu.Lock()
	acks := slices.Clone(fw.acks)
	fw.mu.Unlock()
	t.Logf("%d transitions acknowledged, %d attempts retried during failover", len(acks), fw.errs)
	last := acks[len(acks)-1].Revision
	// Every member, read on its own (serializable: its local copy), holds
	// every acknowledged transition at its revision, in order.
	for i, m := range c.Members {
		mcli, err := etcd.NewClient(ctx, etcd.ClientConfig{Endpoints: m.Endpoints()})
		if err != nil {
			t.Fatalf("member %d: %v", i, err)
		}
		defer mcli.Close()
		var kvs []volattach.Transition
		deadline := time.Now().Add(2 * waitTimeout)
		for {
			resp, err := mcli.Get(ctx, "/failover/history/widgets/fo/", clientv3.WithPrefix(), clientv3.WithSerializable())
			if err != nil {
				t.Fatalf("member %d: %v", i, err)
			}
			if resp.Header.Revision >= last {
				for _, kv := range resp.Kvs {
					var tr volattach.Transition
					if err := json.Unmarshal(kv.Value, &tr); err != nil {
						t.Fatal(err)
					}
					tr.Revision = kv.CreateRevision
					kvs = append(kvs, tr)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("member %d stuck at revision %d, behind %d", i, resp.Header.Revision, last)
			}
			time.Sleep(10 * time.Millisecond) // polling with a deadline
		}
		slices.SortFunc(kvs, func(a, b volattach.Transition) int { return cmp.Compare(a.Revision, b.Revision) })
		byRev := map[int64]volattach.Transition{}
		for _, tr := range kvs {
			byRev[tr.Revision] = tr
		}
		for _, a := range acks {
			got, ok := byRev[a.Revision]
			if !ok || got.Event != a.Event {
				t.Fatalf("member %d lost acknowledged transition %s at revision %d (has %+v)", i, a.Event, a.Revision, got)
			}
		}
	}
}
