package node_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/adapters/etcd"
	"github.com/volattach/volattach/adapters/node"
	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/compute/fake"
	"github.com/volattach/volattach/volume"
)

// The soak: attach and detach cycles against an embedded etcd of its own,
// with every store maintenance a node runs in force (auto-compaction,
// defragment, history retention, and the reconciler collecting finished
// operations). The hypervisor is the fake one and the volume backend keeps
// nothing: only the store is measured. The settings are the defaults'
// shape scaled down in time, so that a few thousand cycles reach the
// steady state the defaults reach in hours.

// soakSettings are the maintenance settings of a soak.
type soakSettings struct {
	compaction etcd.Compaction
	defragment time.Duration
	history    etcd.HistoryRetention
	// collect is the reconciler's period; finished operation records go at
	// its first pass after they end.
	collect time.Duration
	// keepRevisions, when positive, has the soak compact the store itself
	// every compactEvery to keepRevisions behind the newest revision: what
	// the server's revision mode does (CompactRevisions), at a period that
	// suits a soak (etcd's own revision compactor looks every 5 minutes).
	// A time-based window keeps as many revisions as the cycles of its
	// period, so the file would follow the machine's speed, not the
	// number of cycles done.
	keepRevisions int64
	compactEvery  time.Duration
}

// scaledSettings keep the newest 3,000 revisions and the newest 2,000
// history entries, each pruned four times a second, so that what the store
// holds depends on the bounds and hardly on how fast the machine cycles.
var scaledSettings = soakSettings{
	compaction:    etcd.Compaction{Mode: etcd.CompactNever},
	keepRevisions: 3000,
	compactEvery:  250 * time.Millisecond,
	defragment:    5 * time.Second,
	history:       etcd.HistoryRetention{MaxEntries: 2000, MaxAge: time.Hour, Interval: 250 * time.Millisecond},
	collect:       time.Second,
}

const soakHost = "soak-1"

// soak is one compute side (API, host agent, reconciler, history
// retention) on an embedded etcd of its own, with instances that each
// attach and detach a volume of their own.
type soak struct {
	tb     testing.TB
	srv    *etcd.Server
	cli    *clientv3.Client
	store  *etcd.Store
	api    *compute.API
	insts  []string
	vols   []string
	stop   context.CancelFunc
	stopWG sync.WaitGroup
}

func newSoak(tb testing.TB, set soakSettings, pairs int) *soak {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	srv, err := etcd.StartServer(ctx, etcd.ServerConfig{
		UnsafeNoFsync: true, Compaction: set.compaction, DefragmentInterval: set.defragment,
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { srv.Close() })
	cli, err := etcd.NewClient(ctx, etcd.ClientConfig{Endpoints: srv.Endpoints()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cli.Close() })
	s := &soak{tb: tb, srv: srv, cli: cli, store: etcd.NewStore(cli)}
	locker := etcd.NewLocker(cli, etcd.WithSessionTTL(5*time.Second))
	queue := etcd.NewWorkQueue(cli)
	tb.Cleanup(func() {
		locker.Close(context.Background())
	})
	volumes, err := volume.NewService(volume.WithStore(s.store), volume.WithLocker(locker), volume.WithBackend(nullBackend{}))
	if err != nil {
		tb.Fatal(err)
	}
	driver := fake.NewDriver(soakHost, fake.NewFaults())
	if s.api, err = compute.NewAPI(compute.APIConfig{Store: s.store, Volumes: volumes, Queue: queue, Locker: locker}); err != nil {
		tb.Fatal(err)
	}
	agent, err := compute.NewManager(compute.ManagerConfig{
		Host: soakHost, Store: s.store, Locker: locker, Queue: queue, Volumes: volumes, Driver: driver, Workers: pairs,
	})
	if err != nil {
		tb.Fatal(err)
	}
	reconciler, err := compute.NewReconciler(compute.ReconcilerConfig{
		Store: s.store, Locker: locker, Volumes: volumes, Queue: queue, Manager: agent, API: s.api,
		Interval: set.collect, Retention: time.Nanosecond,
	})
	if err != nil {
		tb.Fatal(err)
	}
	history := set.history
	history.Running = node.RunningOperations(s.store)

	runCtx, stop := context.WithCancel(context.Background())
	s.stop = stop
	s.stopWG.Go(func() { _ = agent.Run(runCtx) })
	s.stopWG.Go(func() { reconciler.Run(runCtx) })
	s.stopWG.Go(func() { s.store.RunHistoryRetention(runCtx, history) })
	if set.keepRevisions > 0 {
		s.stopWG.Go(func() { s.compactBehind(runCtx, set.keepRevisions, set.compactEvery) })
	}
	tb.Cleanup(func() { stop(); s.stopWG.Wait() })

	for range pairs {
		inst := &compute.Instance{
			UUID: volume.NewUUID(), VMState: compute.VMActive, LaunchedAt: time.Now().UTC(),
			Host: soakHost, AvailabilityZone: "nova", ProjectID: "p1", RootDeviceName: "/dev/vda",
		}
		if _, err := s.store.Commit(ctx, volattach.Txn{Puts: []volattach.Record{inst}}); err != nil {
			tb.Fatal(err)
		}
		driver.AddGuest(inst.UUID, compute.PowerRunning)
		v, err := volumes.CreateVolume(ctx, volume.VolumeSpec{SizeBytes: 1 << 20, Size: 1, AvailabilityZone: "nova"})
		if err != nil {
			tb.Fatal(err)
		}
		s.insts, s.vols = append(s.insts, inst.UUID), append(s.vols, v.ID)
	}
	return s
}

// compactBehind compacts the store to keep revisions behind the newest,
// every period, until ctx ends.
func (s *soak) compactBehind(ctx context.Context, keep int64, period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	var done int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st, err := s.cli.Status(ctx, s.srv.Endpoints()[0])
		if err != nil {
			continue
		}
		if rev := st.Header.Revision - keep; rev > done {
			if _, err := s.cli.Compact(ctx, rev); err == nil {
				done = rev
			}
		}
	}
}

// cycles runs n attach+detach cycles, spread over the instances (each
// attaches and detaches its own volume, all at once); after every 100th it
// calls sample, with the cycles done so far.
func (s *soak) cycles(ctx context.Context, n int, sample func(done int)) {
	var (
		mu     sync.Mutex
		taken  int
		done   int
		failed error
		wg     sync.WaitGroup
	)
	for k := range s.insts {
		wg.Go(func() {
			for {
				mu.Lock()
				if taken == n || failed != nil {
					mu.Unlock()
					return
				}
				taken++
				mu.Unlock()
				err := s.cycle(ctx, s.insts[k], s.vols[k])
				mu.Lock()
				if err != nil {
					failed = err
				} else if done++; done%100 == 0 && sample != nil {
					sample(done)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if failed != nil {
		s.tb.Fatal(failed)
	}
}

// cycle attaches volume vol to instance inst and detaches it again, within
// testTimeout.
func (s *soak) cycle(ctx context.Context, inst, vol string) error {
	ctx, cancel := context.WithTimeout(ctx, testTimeout)
	defer cancel()
	if _, err := s.api.AttachVolume(ctx, compute.AttachRequest{InstanceUUID: inst, VolumeID: vol}); err != nil {
		return fmt.Errorf("attach %s to %s: %w", vol, inst, err)
	}
	if err := s.api.DetachVolume(ctx, compute.DetachRequest{InstanceUUID: inst, VolumeID: vol}); err != nil {
		return fmt.Errorf("detach %s from %s: %w", vol, inst, err)
	}
	return nil
}

// storeSize is what the soak measures of the store.
type storeSize struct {
	revision, dbBytes, dbInUse, history, keys int64
}

func (s *soak) size(ctx context.Context) storeSize {
	s.tb.Helper()
	st, err := s.cli.Status(ctx, s.srv.Endpoints()[0])
	if err != nil {
		s.tb.Fatal(err)
	}
	h, err := s.store.HistoryCount(ctx)
	if err != nil {
		s.tb.Fatal(err)
	}
	all, err := s.cli.Get(ctx, s.store.Prefix(), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		s.tb.Fatal(err)
	}
	return storeSize{revision: st.Header.Revision, dbBytes: st.DbSize, dbInUse: st.DbSizeInUse, history: h, keys: all.Count}
}

// soakWindow is how many cycles before a mark the soak averages the store's
// size over: the file breathes with the maintenance loops (compaction,
// retention, defragment each run on their own period), so one sample
// lands anywhere between a trough and a peak; the mean of the samples
// taken every 100 cycles in the window before a mark does not.
const soakWindow = 1000

// BenchmarkSoakAttachDetach runs b.N attach+detach cycles on four
// instances at once and reports the store at the start and the end: the database file
// (db-bytes) and its part in use (db-inuse-bytes), the history entries and
// all keys, the largest file seen, the growth of the part in use per cycle,
// and, from 2,000 cycles on, the mean file size over the soakWindow cycles
// before the end over the same mean before cycle 2,000 (bounded growth
// keeps it near 1; db-end/db@2000 is the same ratio of single samples).
// Run it with -benchtime=20000x (the mark at 2,000 is in the same run).
func BenchmarkSoakAttachDetach(b *testing.B) {
	s := newSoak(b, scaledSettings, 4)
	ctx := context.Background()
	start := s.size(ctx)
	peak := start.dbBytes
	var at2000 storeSize
	var early, late windowMean
	b.ResetTimer()
	s.cycles(ctx, b.N, func(done int) {
		now := s.size(ctx)
		peak = max(peak, now.dbBytes)
		if done == 2000 {
			at2000 = now
		}
		if done > 2000-soakWindow && done <= 2000 {
			early.add(now)
		}
		if done > b.N-soakWindow {
			late.add(now)
		}
		if testing.Verbose() && done%1000 == 0 {
			// A long soak shows its progress as it goes (benchmark
			// logs only appear at its end).
			fmt.Printf("soak: %d cycles, %s: db %d bytes, %d in use, %d history entries, %d keys\n",
				done, time.Now().UTC().Format(time.TimeOnly), now.dbBytes, now.dbInUse, now.history, now.keys)
		}
	})
	b.StopTimer()
	end := s.size(ctx)
	peak = max(peak, end.dbBytes)
	b.ReportMetric(float64(start.dbBytes), "db-bytes-start")
	b.ReportMetric(float64(end.dbBytes), "db-bytes-end")
	b.ReportMetric(float64(peak), "db-bytes-peak")
	b.ReportMetric(float64(start.dbInUse), "db-inuse-bytes-start")
	b.ReportMetric(float64(end.dbInUse), "db-inuse-bytes-end")
	b.ReportMetric(float64(start.history), "history-start")
	b.ReportMetric(float64(end.history), "history-end")
	b.ReportMetric(float64(end.keys), "keys-end")
	b.ReportMetric(float64(end.dbInUse-start.dbInUse)/float64(b.N), "inuse-B/cycle")
	b.ReportMetric(float64(end.revision-start.revision)/float64(b.N), "revisions/cycle")
	if at2000.dbBytes > 0 {
		b.ReportMetric(float64(at2000.dbBytes), "db-bytes@2000")
		b.ReportMetric(float64(end.dbBytes)/float64(at2000.dbBytes), "db-end/db@2000")
		b.ReportMetric(early.db(), "db-mean-bytes@2000")
		b.ReportMetric(late.db(), "db-mean-bytes-end")
		b.ReportMetric(late.db()/early.db(), "db-mean-end/db-mean@2000")
		b.ReportMetric(early.historyMean(), "history-mean@2000")
		b.ReportMetric(late.historyMean(), "history-mean-end")
	}
}

// windowMean averages the store's samples over a window of cycles.
type windowMean struct {
	n, dbBytes, history int64
}

func (w *windowMean) add(s storeSize) { w.n++; w.dbBytes += s.dbBytes; w.history += s.history }

func (w *windowMean) db() float64 { return float64(w.dbBytes) / float64(max(w.n, 1)) }

func (w *windowMean) historyMean() float64 { return float64(w.history) / float64(max(w.n, 1)) }

// Over a hundred cycles the history stays within its count bound and
// the database does not keep what compaction and retention free: once the
// cycles stop, the history is back under MaxEntries, the part of the file in
// use is that of the live records, and the defragmented file is small.
// Without compaction and retention 100 cycles leave about 1,700 history
// entries and 3 MB in use. (BenchmarkSoakAttachDetach is the long run; this
// stays short enough for the race detector on a busy machine.)
func TestSoakKeepsHistoryAndDatabaseBounded(t *testing.T) {
	set := soakSettings{
		compaction: etcd.Compaction{Mode: etcd.CompactPeriodic, Period: time.Second},
		defragment: time.Second,
		history:    etcd.HistoryRetention{MaxEntries: 200, MaxAge: time.Hour, Interval: time.Second},
		collect:    2 * time.Second,
	}
	s := newSoak(t, set, 2)
	const cycles = 100
	s.cycles(context.Background(), cycles, nil)
	ctx := testCtx(t)
	var last storeSize
	deadline := time.Now().Add(waitFor)
	for {
		// Writes move bbolt's freed pages to its free list; the
		// compactor, the retention loop and the defragment loop run
		// on their own.
		if _, err := s.cli.Put(ctx, "/tick", "x"); err != nil {
			t.Fatal(err)
		}
		last = s.size(ctx)
		if last.history <= int64(set.history.MaxEntries) && last.dbInUse < 1<<20 && last.dbBytes < 2<<20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d cycles, then %s idle: %d history entries (bound %d), %d keys, db %d bytes with %d in use; want at most %d entries, under 1 MiB in use and a 2 MiB file",
				cycles, waitFor, last.history, set.history.MaxEntries, last.keys, last.dbBytes, last.dbInUse, set.history.MaxEntries)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("%d cycles: %d history entries, %d keys, db %d bytes, %d in use", cycles, last.history, last.keys, last.dbBytes, last.dbInUse)
}

// nullBackend is a volume backend that stores nothing: the soak measures
// the store only.
type nullBackend struct{}

func (nullBackend) Name() string                                                        { return "null" }
func (nullBackend) CreateVolume(context.Context, volume.Volume) error                   { return nil }
func (nullBackend) DeleteVolume(context.Context, volume.Volume) error                   { return nil }
func (nullBackend) RemoveExport(context.Context, volume.Volume) error                   { return nil }
func (nullBackend) CreateExport(context.Context, volume.Volume, volume.Connector) error { return nil }
func (nullBackend) TerminateConnection(context.Context, volume.Volume, volume.Connector) error {
	return nil
}
func (nullBackend) InitializeConnection(_ context.Context, v volume.Volume, _ volume.Connector) (volume.ConnectionInfo, error) {
	return volume.ConnectionInfo{DriverVolumeType: volume.DriverISCSI, Data: map[string]string{
		volume.DataTargetIQN: "iqn.2026-11.io.volattach:" + v.ID, volume.DataTargetPortal: "127.0.0.1:3260",
		volume.DataTargetLUN: "1", volume.DataVolumeID: v.ID,
	}}, nil
}
