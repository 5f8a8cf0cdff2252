package compute_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/adapters/etcd"
	"github.com/volattach/volattach/adapters/etcd/etcdtest"
	"github.com/volattach/volattach/adapters/testenv"
	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/compute/fake"
	"github.com/volattach/volattach/volume"
)

// crashPoint is one checkpoint of an operation: the commit that records
// the step table's row Event from From (to To), for an instance on a host
// or a shelved_offloaded one. A crash there leaves the operation at To
// with nothing done after the commit.
type crashPoint struct {
	Table     *compute.StepTable
	From      compute.Step
	Event     compute.StepEvent
	To        compute.Step
	Offloaded bool
}

func (c crashPoint) String() string {
	where := "host"
	if c.Offloaded {
		where = "offloaded"
	}
	return fmt.Sprintf("%s/%s: %s -%s-> %s", strings.TrimPrefix(c.Table.Name(), "compute."), where, c.From, c.Event, c.To)
}

func (c crashPoint) kind() compute.OperationKind {
	if c.Table == compute.DetachStepTable {
		return compute.OperationDetach
	}
	return compute.OperationAttach
}

// subject is an operation of the crash point's placement, for evaluating
// the table's guards.
func subject(offloaded bool) *compute.Operation {
	if offloaded {
		return &compute.Operation{InstanceUUID: "i", VolumeID: "v"}
	}
	return &compute.Operation{InstanceUUID: "i", VolumeID: "v", Host: testHost}
}

// crashPoints enumerates every checkpoint of the attach and detach
// operations from their step tables: for each table and placement, every
// (row, from-state) pair whose guards admit the placement and whose
// from-state the table can reach from its initial step. A row added to a
// table is a new crash point without any change here.
func crashPoints() []crashPoint {
	var out []crashPoint
	for _, table := range []*compute.StepTable{compute.AttachStepTable, compute.DetachStepTable} {
		for _, offloaded := range []bool{false, true} {
			reach := reachable(table, offloaded)
			for _, row := range table.Rows() {
				for _, from := range row.From {
					if _, ok := reach[from]; ok && table.Can(from, row.Event, subject(offloaded)) {
						out = append(out, crashPoint{Table: table, From: from, Event: row.Event, To: row.To, Offloaded: offloaded})
					}
				}
			}
		}
	}
	return out
}

// edge is one row taken from one state.
type edge struct {
	From  compute.Step
	Event compute.StepEvent
	To    compute.Step
}

// reachable maps every step the table reaches from its initial step, for
// the placement, to the shortest path of rows leading there.
func reachable(table *compute.StepTable, offloaded bool) map[compute.Step][]edge {
	paths := map[compute.Step][]edge{table.Initial(): nil}
	queue := []compute.Step{table.Initial()}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		for _, row := range table.Rows() {
			if !slices.Contains(row.From, s) || !table.Can(s, row.Event, subject(offloaded)) {
				continue
			}
			if _, seen := paths[row.To]; !seen {
				paths[row.To] = append(slices.Clone(paths[s]), edge{s, row.Event, row.To})
				queue = append(queue, row.To)
			}
		}
	}
	return paths
}

// failureEvents are the rows an operation takes when its forward step
// fails; every other row is the forward path or a compensation, taken
// without any fault.
var failureEvents = []compute.StepEvent{compute.EventFail, compute.EventRollDetaching}

// forwardFault is how a test makes the forward step from a step fail: the
// fault to inject (fake step names; "queue_put" is the API's hand-off to
// the host).
type forwardFault struct {
	step string
	err  error
}

type faultKey struct {
	table     string
	offloaded bool
	from      compute.Step
}

// forwardFaults says, for every step a failure row leaves from, which
// injected fault makes the operation take that row. It is the only
// hand-written part of the crash-point tests: a new failure row whose
// from-step is missing here makes TestCrashPoints fail, naming it.
var forwardFaults = map[faultKey]forwardFault{
	// The API cannot queue the attach for its host: it rolls it back.
	{compute.AttachStepTableName, false, compute.StepRequested}:             {step: stepQueuePut},
	{compute.AttachStepTableName, false, compute.StepConverted}:             {step: fake.StepInitializeConnection},
	{compute.AttachStepTableName, false, compute.StepConnectionInitialized}: {step: fake.StepAttachGuest},
	{compute.AttachStepTableName, false, compute.StepGuestAttached}:         {step: fake.CommitStep(compute.AttachStepTableName, string(compute.EventSaveConnectionInfo))},
	{compute.AttachStepTableName, false, compute.StepConnectionSaved}:       {step: fake.StepAttach},
	{compute.AttachStepTableName, true, compute.StepRequested}:              {step: fake.StepAttachmentCreate},
	{compute.AttachStepTableName, true, compute.StepConverted}:              {step: fake.StepAttachmentComplete},
	{compute.DetachStepTableName, false, compute.StepRequested}:             {step: fake.StepDetachGuest, err: compute.ErrDeviceDetachFailed},
}

// stepQueuePut fails the hand-over of an operation to its host's queue:
// only a queue with keys of its own (legacy) can fail there; with the
// store's queue the commit that records the operation hands it over.
const stepQueuePut = "queue_put"

// scenario returns the faults that drive an operation through the crash
// point's row: the table's shortest path to its from-step, then the row,
// with a fault for each failure row on the way.
func (c crashPoint) scenario() (faults []forwardFault, rollsBack bool, err error) {
	path, ok := reachable(c.Table, c.Offloaded)[c.From]
	if !ok {
		return nil, false, fmt.Errorf("%s: from-step unreachable", c)
	}
	for _, e := range append(slices.Clone(path), edge{c.From, c.Event, c.To}) {
		if !slices.Contains(failureEvents, e.Event) {
			continue
		}
		f, ok := forwardFaults[faultKey{c.Table.Name(), c.Offloaded, e.From}]
		if !ok {
			return nil, false, fmt.Errorf("%s: no fault known to make the forward step from %s fail (add one to forwardFaults)", c, e.From)
		}
		faults, rollsBack = append(faults, f), true
	}
	return faults, rollsBack, nil
}

// TestCrashPoints stops an agent (or, for a shelved_offloaded instance and
// for the API's own rollbacks, the API process) exactly at each checkpoint
// of the attach and detach operations: its work is abandoned right after
// the checkpoint's commit, its etcd connection closed and its leases
// revoked, so its locks and queue claims lapse as a crashed process's do.
// A new process then reconciles, and every invariant must hold: the
// operation resumed forward from a forward checkpoint and was fully undone
// from a rollback one.
func TestCrashPoints(t *testing.T) {
	points := crashPoints()
	ran, recovered := 0, 0
	for _, cp := range points {
		started := false
		ok := t.Run(cp.String(), func(t *testing.T) {
			started = true
			runCrashPoint(t, cp)
		})
		if started {
			ran++
			if ok {
				recovered++
			}
		}
	}
	line := fmt.Sprintf("crash points recovered: %d/%d", recovered, ran)
	if ran < len(points) {
		line += fmt.Sprintf(" (%d of %d selected)", ran, len(points))
	}
	testenv.Report(line)
}

func runCrashPoint(t *testing.T, cp crashPoint) {
	faults, rollsBack, err := cp.scenario()
	if err != nil {
		t.Fatal(err)
	}
	legacy := slices.ContainsFunc(faults, func(f forwardFault) bool { return f.step == stepQueuePut })
	w := newWorld(t, etcdtest.Prefix(t), legacy)
	ctx := ctxT(t)
	inst := w.instance(cp.Offloaded)
	vol := w.volume(false)
	if cp.kind() == compute.OperationDetach {
		if _, err := w.proc.api.AttachVolume(ctx, compute.AttachRequest{InstanceUUID: inst.UUID, VolumeID: vol.ID}); err != nil {
			t.Fatalf("attach before the detach: %v", err)
		}
	}
	for _, f := range faults {
		w.faults.FailOnce(f.step, f.err)
	}
	p := w.proc
	reached := p.hook.arm(cp)
	calls := p.call(func(ctx context.Context) error {
		if cp.kind() == compute.OperationDetach {
			return p.api.DetachVolume(ctx, compute.DetachRequest{InstanceUUID: inst.UUID, VolumeID: vol.ID, Async: true})
		}
		_, err := p.api.AttachVolume(ctx, compute.AttachRequest{InstanceUUID: inst.UUID, VolumeID: vol.ID, Async: true})
		return err
	})
	if err := waitReached(reached, calls, 30*time.Second); err != nil {
		t.Fatalf("%s: %v", cp, err)
	}
	p.crash()
	requireCrashedAt(t, w, cp)
	for _, f := range faults {
		w.faults.Clear(f.step)
	}
	w.restart()
	if err := w.settle(ctx); err != nil {
		t.Fatal(err)
	}
	s := w.snapshot(ctx)
	for _, v := range s.violations(true) {
		t.Error(v)
	}
	var op *compute.Operation
	for _, o := range s.operations {
		if o.Kind == cp.kind() {
			op = o
		}
	}
	switch {
	case op == nil:
		t.Errorf("no %s operation recorded", cp.kind())
	case rollsBack && op.Succeeded():
		t.Errorf("operation ended %s; a crash after a rollback checkpoint must finish the rollback", op.Step)
	case !rollsBack && !op.Succeeded():
		t.Errorf("operation ended %s (%v); a crash after a forward checkpoint must resume forward", op.Step, op.Error)
	}
}

// requireCrashedAt checks that the dead process left its operation right
// after the crash point's row: the row is the last of the operation's
// history (or, when its step is checkpointed with the next one, among the
// entries of that commit), and the operation has not ended unless the row
// ends it.
func requireCrashedAt(t *testing.T, w *world, cp crashPoint) {
	t.Helper()
	s := w.snapshot(ctxT(t))
	for _, op := range s.operations {
		if op.Kind != cp.kind() {
			continue
		}
		var rows []string
		found := false
		for _, h := range s.history {
			if h.Entity == op.Key() {
				rows = append(rows, h.From+" -"+h.Event+"-> "+h.To)
				found = found || (h.From == string(cp.From) && h.Event == string(cp.Event))
			}
		}
		if !found {
			t.Fatalf("crashed operation's history %v lacks the crash point's row", rows)
		}
		if op.Done() && !cp.Table.IsTerminal(cp.To) {
			t.Fatalf("operation already ended at %s: the crash came too late (history %v)", op.Step, rows)
		}
		t.Logf("crashed at %s; history %v", op.Step, rows)
		return
	}
	t.Fatalf("no %s operation recorded", cp.kind())
}

// waitReached waits for the crash hook, or fails when the operation's API
// call failed or the hook is not reached within d (the scenario does not
// pass through the crash point).
func waitReached(reached <-chan struct{}, calls <-chan error, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case <-reached:
			return nil
		case err := <-calls:
			if err != nil {
				select {
				case <-reached:
					return nil
				default:
				}
				return fmt.Errorf("the request failed before the checkpoint: %w", err)
			}
			calls = nil // an async request returned; the agent goes on
		case <-timer.C:
			return fmt.Errorf("the operation did not reach the checkpoint within %v", d)
		}
	}
}

// world is one whole system for a crash or property test: the test's own
// etcd connection (it outlives every process), the hypervisor host (the
// fake driver: guests keep their disks when an agent dies), the volume
// side (a service of its own, on an in-memory backend that records its
// exports), faults shared by all of them, and the compute process now
// running (API and host agent on an etcd connection of their own).
type world struct {
	t         tb
	endpoints []string
	prefix    string
	admin     *clientv3.Client
	raw       *etcd.Store
	locker    *etcd.Locker
	faults    *fake.Faults
	driver    *fake.Driver
	backend   *memBackend
	volumes   *volume.Service
	vapi      *fake.VolumeAPI
	proc      *proc
	closed    bool
	// legacy wires the processes as an embedder with a remote volume
	// side: every volume step a call, the queue with keys of its own.
	legacy bool
}

// sessionTTL is the lease TTL of every process's locks and queue claims. A
// crash revokes the dead process's leases, so nothing waits for it.
const sessionTTL = 5 * time.Second

// tb is what a world reports failures to: a *testing.T, or a *rapid.T
// inside a property check.
type tb interface {
	Helper()
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Fatal(args ...any)
}

// newWorld builds a world under prefix and starts its first compute
// process. It is closed when t ends.
func newWorld(t testing.TB, prefix string, legacy ...bool) *world {
	t.Helper()
	w := openWorld(t, etcdtest.Endpoints(t), prefix, legacy...)
	t.Cleanup(w.close)
	return w
}

// openWorld builds a world under prefix on the etcd at endpoints and
// starts its first compute process. The caller closes it.
func openWorld(t tb, endpoints []string, prefix string, legacy ...bool) *world {
	t.Helper()
	w := &world{t: t, endpoints: endpoints, prefix: prefix, faults: fake.NewFaults(), backend: newMemBackend()}
	w.legacy = len(legacy) > 0 && legacy[0]
	w.admin = newClient(t, endpoints)
	w.raw = etcd.NewStore(w.admin, etcd.WithPrefix(prefix))
	w.locker = etcd.NewLocker(w.admin, etcd.WithPrefix(prefix), etcd.WithSessionTTL(sessionTTL))
	var err error
	w.volumes, err = volume.NewService(volume.WithStore(w.raw), volume.WithLocker(w.locker), volume.WithBackend(w.backend))
	if err != nil {
		t.Fatal(err)
	}
	w.vapi = &fake.VolumeAPI{VolumeAPI: w.volumes, Faults: w.faults}
	w.driver = fake.NewDriver(testHost, w.faults)
	w.proc = w.start()
	return w
}

// close stops the running process and the volume side's sessions.
func (w *world) close() {
	if w.closed {
		return
	}
	w.closed = true
	w.proc.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w.locker.Close(ctx)
	w.admin.Close()
}

// newClient connects to the etcd at endpoints.
func newClient(t tb, endpoints []string) *clientv3.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), etcdtest.StartTimeout)
	defer cancel()
	cli, err := etcd.NewClient(ctx, etcd.ClientConfig{Endpoints: endpoints, DialTimeout: etcdtest.StartTimeout})
	if err != nil {
		t.Fatal(err)
	}
	return cli
}

// proc is one compute process: the API and the host agent, on an etcd
// connection of their own that a crash cuts, with a store that can stop the
// process right after a chosen checkpoint.
type proc struct {
	w      *world
	cli    *clientv3.Client
	conn   *killableConn
	hook   *crashHook
	api    *compute.API
	rec    *compute.Reconciler
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// start starts a compute process: its API, and its agent running.
func (w *world) start() *proc {
	w.t.Helper()
	p := &proc{w: w, cli: newClient(w.t, w.endpoints)}
	p.conn = cutOnCrash(p.cli)
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.hook = &crashHook{dead: p.ctx.Done()}
	opts := []etcd.Option{etcd.WithPrefix(w.prefix), etcd.WithSessionTTL(sessionTTL)}
	store := &crashStore{Store: &fake.Store{Store: etcd.NewStore(p.cli, opts...), Faults: w.faults}, hook: p.hook}
	locker := etcd.NewLocker(p.cli, opts...)
	var queue, apiQueue compute.HostQueue = etcd.NewWorkQueue(p.cli, opts...), nil
	var vapi compute.VolumeAPI = w.vapi
	apiQueue = queue
	if w.legacy {
		queue, vapi = etcd.NewQueue(p.cli, opts...), callOnly{w.vapi}
		apiQueue = faultyQueue{HostQueue: queue, faults: w.faults}
	}
	var err error
	p.api, err = compute.NewAPI(compute.APIConfig{
		Store: store, Volumes: vapi, Queue: apiQueue, Locker: locker,
	})
	if err != nil {
		w.t.Fatal(err)
	}
	m, err := compute.NewManager(compute.ManagerConfig{
		Host: testHost, Store: store, Locker: locker, Queue: queue, Volumes: vapi, Driver: w.driver,
		RetryInterval: 5 * time.Millisecond, RetryMax: 50 * time.Millisecond,
	})
	if err != nil {
		w.t.Fatal(err)
	}
	p.rec, err = compute.NewReconciler(compute.ReconcilerConfig{
		Store: store, Locker: locker, Volumes: vapi, Queue: queue, Repairer: w.volumes,
		Manager: m, API: p.api, Grace: -1, Retention: -1,
	})
	if err != nil {
		w.t.Fatal(err)
	}
	p.wg.Go(func() { _ = m.Run(p.ctx) })
	return p
}

// call runs an API request in the process, as a client's request being
// served; its result arrives on the channel.
func (p *proc) call(f func(ctx context.Context) error) <-chan error {
	out := make(chan error, 1)
	p.wg.Go(func() { out <- f(p.ctx) })
	return out
}

// crash kills the process: its etcd connection is cut first, so nothing
// it does afterwards reaches etcd (no unlock, no release of a claim, no
// write), then its work is abandoned and its leases revoked, so its locks
// and queue claims lapse at once, as they do when a dead process's lease
// expires.
func (p *proc) crash() {
	p.once.Do(func() {
		p.conn.cut()
		p.cancel()
		p.wg.Wait()
		p.cli.Close()
		p.revokeLeases()
	})
}

// stop stops the process cleanly: its agent releases its claims and locks.
func (p *proc) stop() {
	p.once.Do(func() {
		p.cancel()
		p.wg.Wait()
		p.cli.Close()
		p.revokeLeases()
	})
}

func (p *proc) revokeLeases() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, id := range p.conn.granted() {
		if _, err := p.w.admin.Revoke(ctx, id); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			p.w.t.Errorf("revoking lease %x of a stopped process: %v", id, err)
		}
	}
}

// restart starts a new compute process after the running one crashed or
// stopped.
func (w *world) restart() { w.proc = w.start() }

// killableConn stands between a process and its etcd connection: it
// records the leases the process grants, and once cut every further
// request fails at once, as from a dead process (a request already sent
// completes, as it would).
type killableConn struct {
	dead atomic.Bool
	mu   sync.Mutex
	ids  []clientv3.LeaseID
}

// cutOnCrash routes cli's requests through a killableConn.
func cutOnCrash(cli *clientv3.Client) *killableConn {
	k := &killableConn{}
	cli.KV = killableKV{KV: cli.KV, k: k}
	cli.Lease = killableLease{Lease: cli.Lease, k: k}
	cli.Watcher = killableWatcher{Watcher: cli.Watcher, k: k}
	return k
}

func (k *killableConn) cut() { k.dead.Store(true) }

func (k *killableConn) check() error {
	if k.dead.Load() {
		return errKilled
	}
	return nil
}

func (k *killableConn) granted() []clientv3.LeaseID {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.ids)
}

type killableKV struct {
	clientv3.KV
	k *killableConn
}

func (kv killableKV) Put(ctx context.Context, key, val string, opts ...clientv3.OpOption) (*clientv3.PutResponse, error) {
	if err := kv.k.check(); err != nil {
		return nil, err
	}
	return kv.KV.Put(ctx, key, val, opts...)
}

func (kv killableKV) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	if err := kv.k.check(); err != nil {
		return nil, err
	}
	return kv.KV.Get(ctx, key, opts...)
}

func (kv killableKV) Delete(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.DeleteResponse, error) {
	if err := kv.k.check(); err != nil {
		return nil, err
	}
	return kv.KV.Delete(ctx, key, opts...)
}

func (kv killableKV) Do(ctx context.Context, op clientv3.Op) (clientv3.OpResponse, error) {
	if err := kv.k.check(); err != nil {
		return clientv3.OpResponse{}, err
	}
	return kv.KV.Do(ctx, op)
}

func (kv killableKV) Txn(ctx context.Context) clientv3.Txn {
	return killableTxn{Txn: kv.KV.Txn(ctx), k: kv.k}
}

type killableTxn struct {
	clientv3.Txn
	k *killableConn
}

func (t killableTxn) If(cs ...clientv3.Cmp) clientv3.Txn {
	return killableTxn{Txn: t.Txn.If(cs...), k: t.k}
}

func (t killableTxn) Then(ops ...clientv3.Op) clientv3.Txn {
	return killableTxn{Txn: t.Txn.Then(ops...), k: t.k}
}

func (t killableTxn) Else(ops ...clientv3.Op) clientv3.Txn {
	return killableTxn{Txn: t.Txn.Else(ops...), k: t.k}
}

func (t killableTxn) Commit() (*clientv3.TxnResponse, error) {
	if err := t.k.check(); err != nil {
		return nil, err
	}
	return t.Txn.Commit()
}

type killableLease struct {
	clientv3.Lease
	k *killableConn
}

// Grant grants a lease and records it.
func (l killableLease) Grant(ctx context.Context, ttl int64) (*clientv3.LeaseGrantResponse, error) {
	if err := l.k.check(); err != nil {
		return nil, err
	}
	resp, err := l.Lease.Grant(ctx, ttl)
	if err == nil {
		l.k.mu.Lock()
		l.k.ids = append(l.k.ids, resp.ID)
		l.k.mu.Unlock()
	}
	return resp, err
}

func (l killableLease) Revoke(ctx context.Context, id clientv3.LeaseID) (*clientv3.LeaseRevokeResponse, error) {
	if err := l.k.check(); err != nil {
		return nil, err
	}
	return l.Lease.Revoke(ctx, id)
}

func (l killableLease) KeepAliveOnce(ctx context.Context, id clientv3.LeaseID) (*clientv3.LeaseKeepAliveResponse, error) {
	if err := l.k.check(); err != nil {
		return nil, err
	}
	return l.Lease.KeepAliveOnce(ctx, id)
}

type killableWatcher struct {
	clientv3.Watcher
	k *killableConn
}

// Watch opens a watch; a dead process's watch is closed at once.
func (w killableWatcher) Watch(ctx context.Context, key string, opts ...clientv3.OpOption) clientv3.WatchChan {
	if w.k.dead.Load() {
		ch := make(chan clientv3.WatchResponse)
		close(ch)
		return ch
	}
	return w.Watcher.Watch(ctx, key, opts...)
}

// errKilled is what a call stopped by a crash hook returns, once its
// process is dead.
var errKilled = errors.New("process killed at a crash point")

// crashHook stops a process right after the commit of one checkpoint.
type crashHook struct {
	mu      sync.Mutex
	at      *crashPoint
	reached chan struct{}
	dead    <-chan struct{}
}

// arm makes the next commit recording cp's row hang until the process
// dies; the channel is closed when it is reached.
func (h *crashHook) arm(cp crashPoint) <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.at, h.reached = &cp, make(chan struct{})
	return h.reached
}

// disarm forgets the crash point.
func (h *crashHook) disarm() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.at = nil
}

// fire reports whether txn recorded the armed row, disarming it if so.
func (h *crashHook) fire(txn volattach.Txn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.at == nil {
		return false
	}
	for _, e := range txn.History {
		if e.Table == h.at.Table.Name() && e.From == string(h.at.From) && e.Event == string(h.at.Event) {
			h.at = nil
			close(h.reached)
			return true
		}
	}
	return false
}

// crashStore is a process's store: after a commit that records the armed
// crash point, the process's work goes no further.
type crashStore struct {
	volattach.Store
	hook *crashHook
}

// Commit commits txn; at the armed crash point it then blocks until the
// process is dead.
func (s *crashStore) Commit(ctx context.Context, txn volattach.Txn) (int64, error) {
	rev, err := s.Store.Commit(ctx, txn)
	if err == nil && s.hook.fire(txn) {
		<-s.hook.dead
		return 0, errKilled
	}
	return rev, err
}

// instance stores an active, launched instance on the test host with a
// guest, or a shelved_offloaded one with neither host nor guest.
func (w *world) instance(offloaded bool) *compute.Instance {
	w.t.Helper()
	i := &compute.Instance{
		UUID: volume.NewUUID(), VMState: compute.VMActive, LaunchedAt: time.Now().UTC(),
		Host: testHost, AvailabilityZone: "nova", ProjectID: "p1", RootDeviceName: "/dev/vda",
	}
	if offloaded {
		i.VMState, i.Host = compute.VMShelvedOffloaded, ""
	}
	if _, err := w.raw.Commit(context.Background(), volattach.Txn{Puts: []volattach.Record{i}}); err != nil {
		w.t.Fatal(err)
	}
	if i.Host != "" {
		w.driver.AddGuest(i.UUID, compute.PowerRunning)
	}
	return i
}

// volume creates an available volume on the in-memory backend.
func (w *world) volume(multiattach bool) *volume.Volume {
	w.t.Helper()
	v, err := w.volumes.CreateVolume(context.Background(), volume.VolumeSpec{Size: 1, AvailabilityZone: "nova", Multiattach: multiattach})
	if err != nil {
		w.t.Fatal(err)
	}
	return v
}

// settle reconciles until two passes in a row find nothing to do and no
// operation is unfinished, or fails when ctx ends first. One clean pass is
// not enough: an operation that ends while a pass reads may leave a change
// the pass judged too young to touch.
func (w *world) settle(ctx context.Context) error {
	var last error
	var left []compute.Finding
	var open []string
	for clean := 0; clean < 2; {
		rep, err := w.proc.rec.RunOnce(ctx)
		if err != nil {
			last = err
		}
		left, open = rep.Findings, nil
		for _, op := range w.snapshot(ctx).operations {
			if !op.Done() {
				open = append(open, fmt.Sprintf("%s %s at %s", op.Kind, op.ID, op.Step))
			}
		}
		if err != nil || len(rep.Findings) > 0 || len(open) > 0 {
			clean = 0
			if !pause(ctx, 10*time.Millisecond) {
				return fmt.Errorf("not settled: operations unfinished %v, findings %v (last reconcile error: %v)", open, left, last)
			}
			continue
		}
		clean++
	}
	return nil
}

// pause waits d or until ctx ends; it reports whether to go on.
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// snapshot reads the whole system now.
func (w *world) snapshot(ctx context.Context) *snapshot {
	w.t.Helper()
	s, err := readSnapshot(ctx, w.admin, w.prefix, w.driver, w.backend)
	if err != nil {
		w.t.Fatalf("snapshot: %v", err)
	}
	return s
}

// memBackend is a volume backend in memory that records which volumes it
// exports, so the invariants can look for an export no attachment uses.
type memBackend struct {
	mu      sync.Mutex
	volumes map[string]bool
	exports map[string]bool
}

var _ volume.Backend = (*memBackend)(nil)

func newMemBackend() *memBackend {
	return &memBackend{volumes: map[string]bool{}, exports: map[string]bool{}}
}

func (b *memBackend) Name() string { return "mem" }

func (b *memBackend) CreateVolume(_ context.Context, v volume.Volume) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.volumes[v.ID] = true
	return nil
}

func (b *memBackend) DeleteVolume(_ context.Context, v volume.Volume) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.volumes, v.ID)
	delete(b.exports, v.ID)
	return nil
}

func (b *memBackend) CreateExport(_ context.Context, v volume.Volume, _ volume.Connector) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.volumes[v.ID] {
		return fmt.Errorf("mem: no volume %s", v.ID)
	}
	b.exports[v.ID] = true
	return nil
}

func (b *memBackend) RemoveExport(_ context.Context, v volume.Volume) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.exports, v.ID)
	return nil
}

func (b *memBackend) InitializeConnection(_ context.Context, v volume.Volume, _ volume.Connector) (volume.ConnectionInfo, error) {
	return volume.ConnectionInfo{DriverVolumeType: volume.DriverFile, Data: map[string]string{volume.DataPath: "/mem/" + v.ID}}, nil
}

func (b *memBackend) TerminateConnection(context.Context, volume.Volume, volume.Connector) error {
	return nil
}

// ListExports returns the exported volume ids, sorted (volume.ExportLister).
func (b *memBackend) ListExports(context.Context) ([]string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Sorted(maps.Keys(b.exports)), nil
}

// A detach asked while an attach of the same pair is unfinished (here a
// shelved_offloaded attach whose process died after it reserved the
// volume) is refused and changes nothing: it must not take the mapping
// over from the attach, which the reconciler then finishes.
func TestDetachRefusedWhileAttachUnfinished(t *testing.T) {
	w := newWorld(t, etcdtest.Prefix(t))
	ctx := ctxT(t)
	inst, vol := w.instance(true), w.volume(false)
	cp := crashPoint{Table: compute.AttachStepTable, From: compute.StepRequested, Event: compute.EventConvert, To: compute.StepConverted, Offloaded: true}
	p := w.proc
	reached := p.hook.arm(cp)
	calls := p.call(func(ctx context.Context) error {
		_, err := p.api.AttachVolume(ctx, compute.AttachRequest{InstanceUUID: inst.UUID, VolumeID: vol.ID})
		return err
	})
	if err := waitReached(reached, calls, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	p.crash()
	w.restart()
	before := w.snapshot(ctx)
	err := w.proc.api.DetachVolume(ctx, compute.DetachRequest{InstanceUUID: inst.UUID, VolumeID: vol.ID})
	if !errors.Is(err, compute.ErrInvalidVolume) {
		t.Fatalf("detach beside an unfinished attach: %v; want InvalidVolume", err)
	}
	after := w.snapshot(ctx)
	if after.revision != before.revision {
		t.Errorf("a refused detach wrote to etcd (revision %d -> %d)", before.revision, after.revision)
	}
	if err := w.settle(ctx); err != nil {
		t.Fatal(err)
	}
	for _, v := range w.snapshot(ctx).violations(true) {
		t.Error(v)
	}
}
