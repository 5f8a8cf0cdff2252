package compute_test

import (
	"context"
	"errors"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/adapters/etcd"
	"github.com/volattach/volattach/adapters/etcd/etcdtest"
	"github.com/volattach/volattach/adapters/storage/file"
	"github.com/volattach/volattach/adapters/testenv"
	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/compute/fake"
	"github.com/volattach/volattach/volume"
)

func TestMain(m *testing.M) { os.Exit(etcdtest.Run(m)) }

const testHost = "compute-1"

// env is one compute side on real embedded etcd and the file backend, with
// the fake hypervisor: an API, a running host agent, and faults that can
// break any step of either.
type env struct {
	t       testing.TB
	raw     *etcd.Store
	store   *fake.Store
	locker  *etcd.Locker
	volumes *volume.Service
	faults  *fake.Faults
	driver  *fake.Driver
	api     *compute.API
	notes   *recorder
	hosts   *hostsUp
	mcfg    compute.ManagerConfig
	stop    func() // stops the host agent
}

type envOption func(*compute.APIConfig, *compute.ManagerConfig)

func withoutAgent() envOption {
	return func(_ *compute.APIConfig, m *compute.ManagerConfig) { m.Host = "" }
}

// callOnly is a volume API that offers no changes as values (a volume side
// reached over the network): the compute side calls it, one write per call.
type callOnly struct{ compute.VolumeAPI }

// legacyHandOff wires the compute side as an embedder with a remote volume
// side does: every volume-side step a call of its own, and the queue with
// its own put/claim/done keys.
func legacyHandOff(t testing.TB) envOption {
	return func(a *compute.APIConfig, m *compute.ManagerConfig) {
		a.Volumes, m.Volumes = callOnly{a.Volumes}, callOnly{m.Volumes}
		a.Queue, m.Queue = etcdtest.Queue(t), etcdtest.Queue(t, etcd.WithSessionTTL(5*time.Second))
	}
}

func newEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	testenv.NeedCommand(t, "qemu-img")
	e := &env{t: t, faults: fake.NewFaults(), notes: &recorder{}, hosts: &hostsUp{down: map[string]bool{}}}
	e.raw = etcdtest.Store(t)
	e.store = &fake.Store{Store: e.raw, Faults: e.faults}
	e.locker = etcdtest.Locker(t, etcd.WithSessionTTL(5*time.Second))
	backend, err := file.New(file.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	e.volumes, err = volume.NewService(volume.WithStore(e.store), volume.WithLocker(e.locker), volume.WithBackend(backend))
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

// startAgent runs a host agent until the test ends or e.stop is called.
func (e *env) startAgent(cfg compute.ManagerConfig) {
	m, err := compute.NewManager(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = m.Run(ctx)
	}()
	var once sync.Once
	e.stop = func() { once.Do(func() { cancel(); <-done }) }
	e.t.Cleanup(e.stop)
}

// instanceSpec changes a new instance before it is stored.
type instanceSpec func(*compute.Instance)

func locked(i *compute.Instance)        { i.Locked = true }
func neverLaunched(i *compute.Instance) { i.LaunchedAt = time.Time{} }
func inState(s compute.VMState) instanceSpec {
	return func(i *compute.Instance) { i.VMState = s }
}
func inZone(az string) instanceSpec { return func(i *compute.Instance) { i.AvailabilityZone = az } }
func withTask(ts compute.TaskState) instanceSpec {
	return func(i *compute.Instance) { i.TaskState = ts }
}

// instance stores an active, launched instance on the test host with a
// guest on the fake hypervisor (none when shelved_offloaded).
func (e *env) instance(specs ...instanceSpec) *compute.Instance {
	e.t.Helper()
	i := &compute.Instance{
		UUID: volume.NewUUID(), VMState: compute.VMActive, LaunchedAt: time.Now().UTC(),
		Host: testHost, AvailabilityZone: "nova", ProjectID: "p1", RootDeviceName: "/dev/vda",
	}
	for _, s := range specs {
		s(i)
	}
	if i.VMState == compute.VMShelvedOffloaded {
		i.Host = ""
	}
	if _, err := e.raw.Commit(context.Background(), volattach.Txn{Puts: []volattach.Record{i}}); err != nil {
		e.t.Fatal(err)
	}
	if i.Host != "" {
		power := compute.PowerRunning
		switch i.VMState {
		case compute.VMStopped, compute.VMShelved, compute.VMSoftDeleted, compute.VMError:
			power = compute.PowerShutdown
		case compute.VMPaused:
			power = compute.PowerPaused
		}
		e.driver.AddGuest(i.UUID, power)
	}
	return i
}

// volumeSpec changes a new volume's spec.
type volumeSpec func(*volume.VolumeSpec)

func multiattach(s *volume.VolumeSpec) { s.Multiattach = true }
func volumeZone(az string) volumeSpec {
	return func(s *volume.VolumeSpec) { s.AvailabilityZone = az }
}

// volume creates an available 1 MiB volume on the file backend.
func (e *env) volume(specs ...volumeSpec) *volume.Volume {
	e.t.Helper()
	spec := volume.VolumeSpec{SizeBytes: 1 << 20, Size: 1, AvailabilityZone: "nova"}
	for _, s := range specs {
		s(&spec)
	}
	v, err := e.volumes.CreateVolume(context.Background(), spec)
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

func (e *env) attach(i *compute.Instance, v *volume.Volume) *compute.VolumeAttachment {
	e.t.Helper()
	va, err := e.api.AttachVolume(ctxT(e.t), compute.AttachRequest{InstanceUUID: i.UUID, VolumeID: v.ID})
	if err != nil {
		e.t.Fatalf("attach %s to %s: %v", v.ID, i.UUID, err)
	}
	return va
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// volumeState returns the volume's status and its attachments' statuses.
func (e *env) volumeState(id string) (volume.Status, []volume.AttachStatus) {
	e.t.Helper()
	v, err := e.volumes.GetVolume(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	atts, err := e.volumes.Attachments(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	var st []volume.AttachStatus
	for _, a := range atts {
		st = append(st, a.AttachStatus)
	}
	return v.Status, st
}

// mapping reads the mapping of v on i; nil when there is none.
func (e *env) mapping(instanceUUID, volumeID string) *compute.BlockDeviceMapping {
	e.t.Helper()
	m := &compute.BlockDeviceMapping{InstanceUUID: instanceUUID, VolumeID: volumeID}
	err := e.raw.Get(context.Background(), m)
	if errors.Is(err, volattach.ErrNotFound) {
		return nil
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

func (e *env) reload(i *compute.Instance) *compute.Instance {
	e.t.Helper()
	fresh := &compute.Instance{UUID: i.UUID}
	if err := e.raw.Get(context.Background(), fresh); err != nil {
		e.t.Fatal(err)
	}
	return fresh
}

// requireDetached asserts the end state of a volume no longer attached to
// instance i: available, no attachment, no mapping, no index entry, no disk
// in the guest, nothing connected on the host.
func (e *env) requireDetached(i *compute.Instance, v *volume.Volume) {
	e.t.Helper()
	if st, atts := e.volumeState(v.ID); st != volume.StatusAvailable || len(atts) != 0 {
		e.t.Errorf("volume %s: status %s, attachments %v; want available, none", v.ID, st, atts)
	}
	if m := e.mapping(i.UUID, v.ID); m != nil {
		e.t.Errorf("mapping left behind: %+v", m)
	}
	if d, ok := e.reload(i).BlockDevices[v.ID]; ok {
		e.t.Errorf("instance index still lists %s at %q", v.ID, d)
	}
	for _, d := range e.driver.Disks(i.UUID) {
		if d.Serial == v.ID {
			e.t.Errorf("disk %s left in the guest at %s", v.ID, d.DeviceName)
		}
	}
	if slices.Contains(e.driver.Connected(), v.ID) {
		e.t.Errorf("volume %s still connected on the host", v.ID)
	}
}

// requireAttached asserts a volume attached to i at device.
func (e *env) requireAttached(i *compute.Instance, v *volume.Volume, device string) {
	e.t.Helper()
	if st, atts := e.volumeState(v.ID); st != volume.StatusInUse || !slices.Contains(atts, volume.AttachAttached) {
		e.t.Errorf("volume %s: status %s, attachments %v; want in-use, attached", v.ID, st, atts)
	}
	m := e.mapping(i.UUID, v.ID)
	if m == nil {
		e.t.Fatalf("no mapping for %s on %s", v.ID, i.UUID)
	}
	if m.DeviceName != device || m.OperationID != "" || m.AttachmentID == "" {
		e.t.Errorf("mapping %+v; want device %s, no operation, an attachment", m, device)
	}
	if i.Host != "" {
		if m.ConnectionInfo == nil || m.ConnectionInfo.Serial != v.ID {
			e.t.Errorf("mapping lacks connection_info with serial %s: %+v", v.ID, m.ConnectionInfo)
		}
		found := false
		for _, d := range e.driver.Disks(i.UUID) {
			found = found || (d.Serial == v.ID && "/dev/"+d.DeviceName == device)
		}
		if !found {
			e.t.Errorf("guest has no disk %s at %s: %+v", v.ID, device, e.driver.Disks(i.UUID))
		}
	}
}

// requireHistoryOnRows checks that every recorded transition of every
// operation and instance of the test follows a row of its table.
func (e *env) requireHistoryOnRows() {
	e.t.Helper()
	all, err := e.raw.HistorySince(context.Background(), 1)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, h := range all {
		var ok bool
		switch h.Table {
		case compute.AttachStepTableName:
			ok = onRow(compute.AttachStepTable, h)
		case compute.DetachStepTableName:
			ok = onRow(compute.DetachStepTable, h)
		case compute.VMStateTableName:
			row, found := compute.VMStateTable.Row(compute.VMState(h.From), compute.Action(h.Event))
			ok = found && slices.Contains(row.Targets(compute.VMState(h.From)), compute.VMState(h.To))
		default:
			continue // the volume side checks its own tables
		}
		if !ok {
			e.t.Errorf("history entry %s %s: %s -%s-> %s follows no row", h.Table, h.Entity, h.From, h.Event, h.To)
		}
	}
}

func onRow(table *compute.StepTable, h volattach.Transition) bool {
	row, found := table.Row(compute.Step(h.From), compute.StepEvent(h.Event))
	return found && slices.Contains(row.Targets(compute.Step(h.From)), compute.Step(h.To))
}

// opHistory returns the events an operation went through.
func (e *env) opHistory(id string) []string {
	e.t.Helper()
	hs, err := e.raw.History(context.Background(), volattach.Key{Kind: volattach.KindOperation, ID: id})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, h := range hs {
		out = append(out, h.Event)
	}
	return out
}

// recorder keeps notifications.
type recorder struct {
	mu    sync.Mutex
	notes []volattach.Notification
}

func (r *recorder) Notify(_ context.Context, n volattach.Notification) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notes = append(r.notes, n)
}

func (r *recorder) events(volumeID string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, n := range r.notes {
		if n.Publisher == "compute" && n.Payload["volume_id"] == volumeID {
			out = append(out, n.Event)
		}
	}
	return out
}

// hostsUp is a ServiceGroup whose hosts are up unless marked down.
type hostsUp struct {
	mu   sync.Mutex
	down map[string]bool
}

func (h *hostsUp) IsUp(_ context.Context, host string) (bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return !h.down[host], nil
}

func (h *hostsUp) set(host string, up bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.down[host] = !up
}

var _ compute.VolumeAPI = (*volume.Service)(nil)
var _ compute.HostQueue = (*etcd.Queue)(nil)
var _ compute.HostQueue = (*etcd.WorkQueue)(nil)
