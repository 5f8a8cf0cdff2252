package compute_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/adapters/etcd"
	"github.com/volattach/volattach/adapters/etcd/etcdtest"
	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/compute/fake"
	"github.com/volattach/volattach/volume"
)

// chapSecret is the CHAP password chapBackend hands out.
const chapSecret = "S3cretChapPassw0rdXY"

// chapBackend is a volume.Backend in memory, as an embedder may register
// one (volume.Backend is public): it takes any id the volume side accepts,
// and answers iSCSI connection_info with CHAP credentials.
type chapBackend struct {
	mu         sync.Mutex
	vols       map[string]bool
	exports    map[string]bool
	terminated []string // connector hosts TerminateConnection was called for
	// failInit makes InitializeConnection fail.
	failInit error
}

func newChapBackend() *chapBackend {
	return &chapBackend{vols: map[string]bool{}, exports: map[string]bool{}}
}

func (b *chapBackend) Name() string { return "mem" }

func (b *chapBackend) CreateVolume(_ context.Context, v volume.Volume) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.vols[v.ID] = true
	return nil
}

func (b *chapBackend) DeleteVolume(_ context.Context, v volume.Volume) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.vols, v.ID)
	return nil
}

func (b *chapBackend) CreateExport(_ context.Context, v volume.Volume, _ volume.Connector) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.exports[v.ID] = true
	return nil
}

func (b *chapBackend) RemoveExport(_ context.Context, v volume.Volume) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.exports, v.ID)
	return nil
}

func (b *chapBackend) InitializeConnection(_ context.Context, v volume.Volume, _ volume.Connector) (volume.ConnectionInfo, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.failInit != nil {
		return volume.ConnectionInfo{}, b.failInit
	}
	return volume.ConnectionInfo{DriverVolumeType: volume.DriverISCSI, Data: map[string]string{
		volume.DataTargetIQN: "iqn.2026-11.io.volattach:" + v.ID, volume.DataTargetPortal: "127.0.0.1:3260",
		volume.DataTargetLUN: "1", volume.DataAuthMethod: "CHAP", volume.DataAuthUsername: "u",
		volume.DataAuthPassword: chapSecret, volume.DataVolumeID: v.ID,
	}}, nil
}

func (b *chapBackend) TerminateConnection(_ context.Context, _ volume.Volume, c volume.Connector) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.terminated = append(b.terminated, c.Host)
	return nil
}

func (b *chapBackend) hasVolume(id string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.vols[id]
}

func (b *chapBackend) terminations() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.terminated)
}

// newMemEnv is newEnv on real etcd with chapBackend instead of the file
// backend (no qemu-img needed).
func newMemEnv(t testing.TB, b volume.Backend, opts ...envOption) *env {
	t.Helper()
	e := &env{t: t, faults: fake.NewFaults(), notes: &recorder{}, hosts: &hostsUp{down: map[string]bool{}}}
	e.raw = etcdtest.Store(t)
	e.store = &fake.Store{Store: e.raw, Faults: e.faults}
	e.locker = etcdtest.Locker(t, etcd.WithSessionTTL(5*time.Second))
	var err error
	e.volumes, err = volume.NewService(volume.WithStore(e.store), volume.WithLocker(e.locker), volume.WithBackend(b))
	if err != nil {
		t.Fatal(err)
	}
	vapi := &fake.VolumeAPI{VolumeAPI: e.volumes, Faults: e.faults}
	e.driver = fake.NewDriver(testHost, e.faults)
	acfg := compute.APIConfig{
		Store: e.store, Volumes: vapi, Queue: etcdtest.WorkQueue(t), Locker: e.locker,
		Services: e.hosts, Notifier: e.notes,
	}
	mcfg := compute.ManagerConfig{
		Host: testHost, Store: e.store, Locker: e.locker, Queue: etcdtest.WorkQueue(t),
		Volumes: vapi, Driver: e.driver, Notifier: e.notes, RetryInterval: 5 * time.Millisecond, RetryMax: 50 * time.Millisecond,
	}
	for _, o := range opts {
		o(&acfg, &mcfg)
	}
	if e.api, err = compute.NewAPI(acfg); err != nil {
		t.Fatal(err)
	}
	e.stop = func() {}
	e.mcfg = mcfg
	if mcfg.Host != "" {
		e.startAgent(mcfg)
	}
	return e
}

// memVolume creates a volume with the given id ("" for a fresh uuid).
func (e *env) memVolume(id string, multiattach bool) *volume.Volume {
	e.t.Helper()
	v, err := e.volumes.CreateVolume(context.Background(), volume.VolumeSpec{ID: id, SizeBytes: 1 << 20, Size: 1, AvailabilityZone: "nova", Multiattach: multiattach})
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

// txnLog records every transaction a store commits.
type txnLog struct {
	volattach.Store
	mu   sync.Mutex
	txns []volattach.Txn
}

func (s *txnLog) Commit(ctx context.Context, txn volattach.Txn) (int64, error) {
	s.mu.Lock()
	s.txns = append(s.txns, txn)
	s.mu.Unlock()
	return s.Store.Commit(ctx, txn)
}

// memStore is an in-memory volattach.Store with adapters/etcd's compare
// rules (revision compares, fences checked against its memLocker) and its
// decode rules (a record that does not decode or validate is corrupt), for
// fuzzing without etcd.
type memStore struct {
	mu     sync.Mutex
	rev    int64
	data   map[volattach.Key][]byte
	mod    map[volattach.Key]int64
	locker *memLocker
}

func newMemStore(l *memLocker) *memStore {
	return &memStore{data: map[volattach.Key][]byte{}, mod: map[volattach.Key]int64{}, locker: l}
}

func (s *memStore) Get(_ context.Context, into volattach.Record) (err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := into.Key()
	raw, ok := s.data[k]
	if !ok {
		return fmt.Errorf("%w: %s", volattach.ErrNotFound, k)
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: panic %v", volattach.ErrCorrupt, p)
		}
	}()
	if err := json.Unmarshal(raw, into); err != nil {
		return fmt.Errorf("%w: %v", volattach.ErrCorrupt, err)
	}
	if into.Key() != k {
		return fmt.Errorf("%w: other key", volattach.ErrCorrupt)
	}
	if err := into.Validate(); err != nil {
		return fmt.Errorf("%w: %v", volattach.ErrCorrupt, err)
	}
	into.SetRevision(s.mod[k])
	return nil
}

func (s *memStore) List(_ context.Context, kind volattach.Kind, prefix, after string, limit int) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for k := range s.data {
		if k.Kind == kind && strings.HasPrefix(k.ID, prefix) && (after == "" || k.ID > after) {
			ids = append(ids, k.ID)
		}
	}
	slices.Sort(ids)
	if limit > 0 && len(ids) > limit {
		ids = ids[:limit]
	}
	return ids, nil
}

func (s *memStore) Commit(_ context.Context, txn volattach.Txn) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, group := range [][]volattach.Record{txn.Puts, txn.Deletes, txn.Reads} {
		for _, r := range group {
			if s.mod[r.Key()] != r.Revision() {
				return 0, fmt.Errorf("%w: %s", volattach.ErrConflict, r.Key())
			}
		}
	}
	var releases []memFence
	for _, lk := range txn.Releases {
		mf, ok := lk.Fence().(memFence)
		if !ok {
			return 0, fmt.Errorf("release of a foreign lock %T", lk)
		}
		releases = append(releases, mf)
	}
	for _, f := range txn.Fences {
		mf, ok := f.(memFence)
		if !ok || !s.locker.held(mf) {
			return 0, fmt.Errorf("%w: %w", volattach.ErrConflict, volattach.ErrLockLost)
		}
	}
	for _, mf := range releases {
		if !s.locker.held(mf) {
			return 0, fmt.Errorf("%w: %w", volattach.ErrConflict, volattach.ErrLockLost)
		}
	}
	for _, r := range txn.Puts {
		if err := r.Validate(); err != nil {
			return 0, err
		}
	}
	s.rev++
	for _, r := range txn.Puts {
		raw, err := json.Marshal(r)
		if err != nil {
			return 0, err
		}
		s.data[r.Key()], s.mod[r.Key()] = raw, s.rev
		r.SetRevision(s.rev)
	}
	for _, r := range txn.Deletes {
		delete(s.data, r.Key())
		delete(s.mod, r.Key())
		r.SetRevision(0)
	}
	for _, mf := range releases {
		s.locker.release(mf)
	}
	return s.rev, nil
}

// putRaw stores bytes as they are: what another writer, an older version
// or an operator's etcdctl put may leave.
func (s *memStore) putRaw(k volattach.Key, raw []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rev++
	s.data[k], s.mod[k] = raw, s.rev
}

type memFence struct {
	name  string
	token int64
}

func (f memFence) LockName() string { return f.name }

// memLocker is an in-memory volattach.Locker.
type memLocker struct {
	mu     sync.Mutex
	next   int64
	owners map[string]int64
	free   map[string]chan struct{}
}

func newMemLocker() *memLocker {
	return &memLocker{owners: map[string]int64{}, free: map[string]chan struct{}{}}
}

func (l *memLocker) held(f memFence) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.owners[f.name] == f.token
}

func (l *memLocker) Lock(ctx context.Context, name string) (volattach.Lock, error) {
	for {
		l.mu.Lock()
		if _, busy := l.owners[name]; !busy {
			l.next++
			l.owners[name] = l.next
			l.mu.Unlock()
			return &memLock{l: l, f: memFence{name, l.next}, lost: make(chan struct{})}, nil
		}
		ch := l.free[name]
		if ch == nil {
			ch = make(chan struct{})
			l.free[name] = ch
		}
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

type memLock struct {
	l    *memLocker
	f    memFence
	lost chan struct{}
	once sync.Once
}

func (k *memLock) Name() string           { return k.f.name }
func (k *memLock) Fence() volattach.Fence { return k.f }
func (k *memLock) Lost() <-chan struct{}  { return k.lost }

// release frees the lock f proves, if it is still held with f: at Unlock,
// or in a commit that releases it (Txn.Releases).
func (l *memLocker) release(f memFence) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.owners[f.name] == f.token {
		delete(l.owners, f.name)
		if ch := l.free[f.name]; ch != nil {
			close(ch)
			delete(l.free, f.name)
		}
	}
}

// Unlock frees the lock (nothing left to free after a commit released
// it); lose is the same from the holder's side.
func (k *memLock) Unlock(context.Context) error {
	k.once.Do(func() {
		k.l.release(k.f)
		close(k.lost)
	})
	return nil
}

// nopQueue is a HostQueue for Manager.Handle called directly.
type nopQueue struct{}

func (nopQueue) Put(context.Context, string, string, []byte) error { return nil }
func (nopQueue) Next(ctx context.Context, _ string) (string, []byte, error) {
	<-ctx.Done()
	return "", nil, ctx.Err()
}
func (nopQueue) Done(context.Context, string, string, []byte) error { return nil }
func (nopQueue) Release(context.Context, string, string) error      { return nil }
func (nopQueue) Wait(ctx context.Context, _, _ string) ([]byte, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}
