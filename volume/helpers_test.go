package volume_test

import (
	"context"
	"errors"
	"maps"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/adapters/etcd"
	"github.com/volattach/volattach/adapters/etcd/etcdtest"
	"github.com/volattach/volattach/volume"
)

func TestMain(m *testing.M) { os.Exit(etcdtest.Run(m)) }

// Instances used by the tests.
const (
	instA = "6edad723-c62d-40d4-a29e-d9ac6a3247ee"
	instB = "3b9fdb6c-200e-494d-aa71-f47c70e87d7e"
	instC = "9f0c1a52-7a2e-4f57-8f0e-0e6c4b1f2d11"
)

var hostConnector = volume.Connector{Host: "compute-1", IP: "127.0.0.1", Initiator: "iqn.2026-11.io.volattach.test:compute-1"}

func connectorFor(host string) volume.Connector {
	c := hostConnector
	c.Host = host
	return c
}

// fakeBackend is an in-memory volume backend with fault injection. It keeps
// what is exported and connected so tests can check nothing is left behind,
// and numbers every call so tests can check their order.
type fakeBackend struct {
	name string

	mu       sync.Mutex
	faults   map[string]error
	volumes  map[string]bool
	exports  map[string]bool
	conns    map[string]map[string]bool // volume -> hosts
	calls    []string
	seq      atomic.Int64
	inHook   atomic.Int32
	overlaps atomic.Int32
}

func newFakeBackend() *fakeBackend {
	return &fakeBackend{
		name:   "fake",
		faults: map[string]error{}, volumes: map[string]bool{}, exports: map[string]bool{},
		conns: map[string]map[string]bool{},
	}
}

// fail makes every later call of op fail with err (nil: succeed again).
func (b *fakeBackend) fail(op string, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err == nil {
		delete(b.faults, op)
		return
	}
	b.faults[op] = err
}

func (b *fakeBackend) enter(op string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, op)
	return b.faults[op]
}

func (b *fakeBackend) exported(id string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.exports[id]
}

func (b *fakeBackend) connectedHosts(id string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Sorted(maps.Keys(b.conns[id]))
}

func (b *fakeBackend) callCount(op string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, c := range b.calls {
		if c == op {
			n++
		}
	}
	return n
}

func (b *fakeBackend) Name() string { return b.name }

func (b *fakeBackend) CreateVolume(ctx context.Context, v volume.Volume) error {
	if err := b.enter("CreateVolume"); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.volumes[v.ID] = true
	return nil
}

func (b *fakeBackend) DeleteVolume(ctx context.Context, v volume.Volume) error {
	if err := b.enter("DeleteVolume"); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.volumes, v.ID)
	delete(b.exports, v.ID)
	delete(b.conns, v.ID)
	return nil
}

func (b *fakeBackend) CreateExport(ctx context.Context, v volume.Volume, c volume.Connector) error {
	if err := b.enter("CreateExport"); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.volumes[v.ID] {
		return errors.New("fake: no such volume")
	}
	b.exports[v.ID] = true
	return nil
}

func (b *fakeBackend) RemoveExport(ctx context.Context, v volume.Volume) error {
	if err := b.enter("RemoveExport"); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.exports, v.ID)
	return nil
}

func (b *fakeBackend) InitializeConnection(ctx context.Context, v volume.Volume, c volume.Connector) (volume.ConnectionInfo, error) {
	if err := b.enter("InitializeConnection"); err != nil {
		return volume.ConnectionInfo{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.exports[v.ID] {
		return volume.ConnectionInfo{}, errors.New("fake: not exported")
	}
	if b.conns[v.ID] == nil {
		b.conns[v.ID] = map[string]bool{}
	}
	b.conns[v.ID][c.Host] = true
	return volume.ConnectionInfo{DriverVolumeType: volume.DriverFile, Data: map[string]string{volume.DataPath: "/fake/" + v.ID}}, nil
}

func (b *fakeBackend) TerminateConnection(ctx context.Context, v volume.Volume, c volume.Connector) error {
	if err := b.enter("TerminateConnection"); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.conns[v.ID], c.Host)
	return nil
}

// hookedBackend adds the optional attach and detach hooks. The attach hook
// blocks while gate is set, until gate is closed; entered is signalled when
// it starts. Hook calls are numbered, and a detach hook running while an
// attach hook runs counts as an overlap.
type hookedBackend struct {
	*fakeBackend
	gate     chan struct{}
	entered  chan struct{}
	attachAt atomic.Int64 // sequence number when the attach hook returned
	detachAt atomic.Int64 // sequence number when the detach hook started
	// detachGate and detachEntered do for the detach hook what gate and
	// entered do for the attach hook.
	detachGate    chan struct{}
	detachEntered chan struct{}
}

func (b *hookedBackend) AttachVolume(ctx context.Context, v volume.Volume, instanceUUID, host, mountpoint string) error {
	b.inHook.Add(1)
	defer b.inHook.Add(-1)
	if err := b.enter("AttachVolume"); err != nil {
		return err
	}
	if b.entered != nil {
		b.entered <- struct{}{}
	}
	if b.gate != nil {
		select {
		case <-b.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	b.attachAt.Store(b.seq.Add(1))
	return nil
}

func (b *hookedBackend) DetachVolume(ctx context.Context, v volume.Volume, a volume.Attachment) error {
	if b.inHook.Load() > 0 {
		b.overlaps.Add(1)
	}
	b.detachAt.Store(b.seq.Add(1))
	if b.detachEntered != nil {
		b.detachEntered <- struct{}{}
	}
	if b.detachGate != nil {
		select {
		case <-b.detachGate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return b.enter("DetachVolume")
}

// countingStore counts commits (etcd write transactions) for the benchmark
// and the tests that check a refusal writes nothing.
type countingStore struct {
	volattach.Store
	commits atomic.Int64
}

func (s *countingStore) Commit(ctx context.Context, txn volattach.Txn) (int64, error) {
	s.commits.Add(1)
	return s.Store.Commit(ctx, txn)
}

// countingLocker counts lock acquisitions.
type countingLocker struct {
	volattach.Locker
	locks atomic.Int64
}

func (l *countingLocker) Lock(ctx context.Context, name string) (volattach.Lock, error) {
	l.locks.Add(1)
	return l.Locker.Lock(ctx, name)
}

// recorder collects notifications.
type recorder struct {
	mu     sync.Mutex
	events []volattach.Notification
}

func (r *recorder) Notify(_ context.Context, n volattach.Notification) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, n)
}

func (r *recorder) names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, len(r.events))
	for i, n := range r.events {
		out[i] = n.Event
	}
	return out
}

// env is one test's service over the real embedded etcd.
type env struct {
	t       testing.TB
	svc     *volume.Service
	store   *etcd.Store
	counted *countingStore
	locker  *countingLocker
	backend *fakeBackend
	notes   *recorder
}

func newEnv(t testing.TB, b volume.Backend, fake *fakeBackend, opts ...volume.Option) *env {
	t.Helper()
	store := etcdtest.Store(t)
	e := &env{
		t: t, store: store, counted: &countingStore{Store: store},
		locker: &countingLocker{Locker: etcdtest.Locker(t)}, backend: fake, notes: &recorder{},
	}
	svc, err := volume.NewService(append([]volume.Option{
		volume.WithStore(e.counted), volume.WithLocker(e.locker), volume.WithBackend(b),
		volume.WithNotifier(e.notes),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	e.svc = svc
	return e
}

// newFakeEnv is an env over a fakeBackend without hooks.
func newFakeEnv(t testing.TB) *env {
	fake := newFakeBackend()
	return newEnv(t, fake, fake)
}

func ctxFor(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// create makes an available volume.
func (e *env) create(spec volume.VolumeSpec) *volume.Volume {
	e.t.Helper()
	if spec.SizeBytes == 0 && spec.Size == 0 {
		spec.SizeBytes = 1 << 20
	}
	v, err := e.svc.CreateVolume(ctxFor(e.t), spec)
	if err != nil {
		e.t.Fatalf("CreateVolume: %v", err)
	}
	return v
}

// get reads a volume.
func (e *env) get(id string) *volume.Volume {
	e.t.Helper()
	v, err := e.svc.GetVolume(ctxFor(e.t), id)
	if err != nil {
		e.t.Fatalf("GetVolume %s: %v", id, err)
	}
	return v
}

func (e *env) attachments(id string) []*volume.Attachment {
	e.t.Helper()
	as, err := e.svc.Attachments(ctxFor(e.t), id)
	if err != nil {
		e.t.Fatalf("Attachments %s: %v", id, err)
	}
	return as
}

// revision is the etcd server's current revision.
func (e *env) revision() int64 {
	e.t.Helper()
	return etcdtest.Revision(e.t)
}

// history is the recorded transitions of a record.
func (e *env) history(k volattach.Key) []volattach.Transition {
	e.t.Helper()
	h, err := e.store.History(ctxFor(e.t), k)
	if err != nil {
		e.t.Fatalf("History %s: %v", k, err)
	}
	return h
}

// wantStatus checks a volume's status and summary attach status.
func (e *env) wantStatus(id string, status volume.Status, attach volume.AttachStatus) {
	e.t.Helper()
	v := e.get(id)
	if v.Status != status || v.AttachStatus != attach {
		e.t.Fatalf("volume %s is %s/%s, want %s/%s", id, v.Status, v.AttachStatus, status, attach)
	}
}

// attached brings a new volume to in-use through the legacy flow.
func (e *env) attached(spec volume.VolumeSpec, instance string) (*volume.Volume, *volume.Attachment) {
	e.t.Helper()
	ctx := ctxFor(e.t)
	v := e.create(spec)
	if err := e.svc.Reserve(ctx, v.ID); err != nil {
		e.t.Fatalf("Reserve: %v", err)
	}
	if _, err := e.svc.InitializeConnection(ctx, v.ID, hostConnector); err != nil {
		e.t.Fatalf("InitializeConnection: %v", err)
	}
	a, err := e.svc.Attach(ctx, v.ID, instance, "compute-1", "/dev/vdb", volume.ModeRW)
	if err != nil {
		e.t.Fatalf("Attach: %v", err)
	}
	return e.get(v.ID), a
}

// checkHistory asserts that every transition recorded under the test's
// prefix moved along a row of its table, or created a record in the state
// its creation event names.
func (e *env) checkHistory() {
	e.t.Helper()
	h, err := e.store.HistorySince(ctxFor(e.t), 1)
	if err != nil {
		e.t.Fatalf("HistorySince: %v", err)
	}
	created := map[string]string{
		"volume.status/" + string(volume.EventCreate):                   string(volume.StatusCreating),
		"volume.attach_status/" + string(volume.AttachEventCreate):      string(volume.AttachReserved),
		"volume.attach_status/" + string(volume.AttachEventBeginAttach): string(volume.AttachAttaching),
	}
	for _, tr := range h {
		var ok bool
		switch {
		case tr.From == "":
			to, found := created[tr.Table+"/"+tr.Event]
			ok = found && to == tr.To
		case tr.Table == "volume.status":
			r, found := volume.VolumeStatusTable().Row(volume.Status(tr.From), volume.Event(tr.Event))
			ok = found && slices.Contains(r.Targets(volume.Status(tr.From)), volume.Status(tr.To))
		case tr.Table == "volume.attach_status":
			r, found := volume.AttachStatusTable().Row(volume.AttachStatus(tr.From), volume.AttachEvent(tr.Event))
			ok = found && slices.Contains(r.Targets(volume.AttachStatus(tr.From)), volume.AttachStatus(tr.To))
		default:
			e.t.Fatalf("transition of unknown table %s", tr.Table)
		}
		if !ok {
			e.t.Fatalf("history entry %s %s: %s -(%s)-> %s follows no row", tr.Table, tr.Entity, tr.From, tr.Event, tr.To)
		}
	}
}

// reset forgets the notifications collected so far.
func (r *recorder) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = nil
}
