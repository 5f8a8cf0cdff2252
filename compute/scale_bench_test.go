package compute_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
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

// The scale benchmarks populate up to 100,000 volumes per size on an
// embedded etcd of their own; they run only when VOLATTACH_BENCH_SCALE=1
// (make bench stays short):
//
//	VOLATTACH_BENCH_SCALE=1 go test -run '^$' -bench BenchmarkScale -benchtime 1x -timeout 60m ./compute/
//
// VOLATTACH_BENCH_SCALE_STORED and VOLATTACH_BENCH_SCALE_ATTACHED
// (comma-separated) override the sizes of each. Every figure is also logged
// as one JSON line per size.
func needScale(b *testing.B) {
	if os.Getenv("VOLATTACH_BENCH_SCALE") != "1" {
		b.Skip("scale benchmark: set VOLATTACH_BENCH_SCALE=1 (it populates up to 100,000 volumes per size)")
	}
}

// scaleSizes returns the sizes the environment variable names, or def.
func scaleSizes(b *testing.B, name string, def []int) []int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			b.Fatalf("%s: %q is not a size", name, f)
		}
		out = append(out, n)
	}
	return out
}

// storedResult is what BenchmarkScaleStoredVolumes measured at one size.
type storedResult struct {
	Volumes, Instances, OnHost int
	PopulateS                  float64
	// 50 sequential attach+detach cycles, milliseconds.
	AttachP50, AttachP99, DetachP50, DetachP99 float64
	// Healthy passes, seconds: the host pass (best of 3) and the full
	// audit, unpaced.
	HostPassS, FullPassS float64
	// Their CPU seconds (process: client and embedded etcd).
	HostPassCPUS, FullPassCPUS float64
	// The host pass that resumes the 10 operations a stopped agent left,
	// seconds.
	DeadAgentS float64
}

// BenchmarkScaleStoredVolumes: does an attach, a host pass and the resume
// of a dead agent's operations cost the same with 100, 10,000 and 100,000
// volumes stored? For each size S (its own etcd server) it stores S
// available volumes and I = min(S/10, 10000) (at least 20) instances, 100 of them on the
// agent's host with a guest and the rest on 100 other hosts (records only;
// population not counted), attaches 10 volumes, then times 50 sequential
// attach+detach cycles, healthy host passes (RunHost) and a full audit
// (RunOnce), and last stops the agent, leaves 10 attaches queued for it
// and times the host pass that resumes them. Ratios are against the
// smallest size of the same run.
func BenchmarkScaleStoredVolumes(b *testing.B) {
	needScale(b)
	sizes := scaleSizes(b, "VOLATTACH_BENCH_SCALE_STORED", []int{100, 10_000, 100_000})
	var res []storedResult
	for range b.N {
		res = nil
		for _, s := range sizes {
			res = append(res, runStored(b, s))
		}
	}
	base := res[0]
	for _, r := range res {
		tag := strconv.Itoa(r.Volumes)
		b.ReportMetric(r.AttachP50, "attach-p50-ms@"+tag)
		b.ReportMetric(r.AttachP50/base.AttachP50, "attach-p50-ratio@"+tag)
		b.ReportMetric(r.HostPassS*1000, "host-pass-ms@"+tag)
		b.ReportMetric(r.FullPassS*1000, "full-audit-ms@"+tag)
		b.ReportMetric(r.DeadAgentS*1000, "dead-agent-ms@"+tag)
		b.ReportMetric(r.DeadAgentS/base.DeadAgentS, "dead-agent-ratio@"+tag)
		out, _ := json.Marshal(r)
		b.Logf("%s", out)
	}
}

func runStored(b *testing.B, s int) storedResult {
	ctx := context.Background()
	inst := max(min(s/10, 10_000), 20) // 10 attached and 10 for the dead agent on the host
	onHost := min(inst, 100)
	const attached, cycles, dead = 10, 50, 10
	res := storedResult{Volumes: s, Instances: inst, OnHost: onHost}
	e := newScaleEnv(b)
	progress := scaleProgress(fmt.Sprintf("stored S=%d", s))

	b.StopTimer()
	t0 := time.Now()
	onFile := attached + 1 + dead
	if err := populateVolumes(ctx, e, max(s-onFile, 0)); err != nil {
		b.Fatalf("populating %d volumes: %v", s-onFile, err)
	}
	vols := make([]*volume.Volume, onFile)
	for k := range vols {
		vols[k] = e.volume()
	}
	insts := make([]*compute.Instance, onHost)
	for k := range insts {
		insts[k] = e.instance()
	}
	if err := populateOtherHosts(ctx, e, inst-onHost); err != nil {
		b.Fatal(err)
	}
	res.PopulateS = time.Since(t0).Seconds()
	progress("populated in %.1fs", res.PopulateS)
	for k := range attached {
		e.attach(insts[k], vols[k])
	}

	i, v := e.instance(), vols[attached]
	var att, det []time.Duration
	b.StartTimer()
	for range cycles {
		a0 := time.Now()
		if _, err := e.api.AttachVolume(ctx, compute.AttachRequest{InstanceUUID: i.UUID, VolumeID: v.ID}); err != nil {
			b.Fatal(err)
		}
		att = append(att, time.Since(a0))
		d0 := time.Now()
		if err := e.api.DetachVolume(ctx, compute.DetachRequest{InstanceUUID: i.UUID, VolumeID: v.ID}); err != nil {
			b.Fatal(err)
		}
		det = append(det, time.Since(d0))
	}
	b.StopTimer()
	res.AttachP50, res.AttachP99, _ = percentiles(att)
	res.DetachP50, res.DetachP99, _ = percentiles(det)

	r := e.recNew()
	before := e.recRevision()
	res.HostPassS, res.HostPassCPUS = 1e9, 1e9
	for range 3 {
		wall, cpu := healthyPassCPU(b, r.RunHost)
		res.HostPassS, res.HostPassCPUS = min(res.HostPassS, wall), min(res.HostPassCPUS, cpu)
	}
	res.FullPassS, res.FullPassCPUS = healthyPassCPU(b, r.RunOnce)
	if after := e.recRevision(); after != before {
		b.Fatalf("a healthy pass wrote: revision %d -> %d", before, after)
	}

	// The agent stops; 10 attaches are queued for it; the host's
	// reconciler (its clock past the grace) resumes them.
	e.stop()
	for k := range dead {
		if _, err := e.api.AttachVolume(ctx, compute.AttachRequest{InstanceUUID: insts[attached+k].UUID, VolumeID: vols[attached+1+k].ID, Async: true}); err != nil {
			b.Fatal(err)
		}
	}
	t1 := time.Now()
	rep, err := r.RunHost(ctx)
	res.DeadAgentS = time.Since(t1).Seconds()
	if err != nil || len(rep.Repairs) != dead || len(rep.Left) > 0 {
		b.Fatalf("resuming the dead agent's operations: %v; repairs %d, left %v", err, len(rep.Repairs), rep.Left)
	}
	progress("attach p50 %.1fms, host pass %.3fs (%.3f CPU-s), full audit %.3fs (%.2f CPU-s), dead agent's %d operations %.3fs",
		res.AttachP50, res.HostPassS, res.HostPassCPUS, res.FullPassS, res.FullPassCPUS, dead, res.DeadAgentS)
	return res
}

// attachedResult is what BenchmarkScaleAuditAttached measured at one size.
type attachedResult struct {
	Attached   int
	PopulateS  float64
	SweepS     float64 // unpaced, best of 2
	SweepPaced float64 // what the default pace would make it at least
	HostPassS  float64 // best of 2
	// CPU seconds of the process (client and embedded etcd) during the
	// sweep and the host pass, best of 2.
	SweepCPUS, HostPassCPUS float64
}

// BenchmarkScaleAuditAttached: the full audit (Sweep, unpaced) with every
// stored volume attached, at 25,000, 50,000 and 100,000 pairs, and the host
// pass beside it. One pair is attached through the API on the agent's host
// (a guest); the rest are copies of its records (volume, attachment,
// instance, mapping, finished operation) on 100 other hosts, one commit
// each (not counted). Linear when sweep-s-per-100k is flat across sizes.
func BenchmarkScaleAuditAttached(b *testing.B) {
	needScale(b)
	sizes := scaleSizes(b, "VOLATTACH_BENCH_SCALE_ATTACHED", []int{25_000, 50_000, 100_000})
	var res []attachedResult
	for range b.N {
		res = nil
		for _, n := range sizes {
			res = append(res, runAttached(b, n))
		}
	}
	for _, r := range res {
		tag := strconv.Itoa(r.Attached)
		b.ReportMetric(r.SweepS, "sweep-s@"+tag)
		b.ReportMetric(r.SweepS*100_000/float64(r.Attached), "sweep-s-per-100k@"+tag)
		b.ReportMetric(r.SweepCPUS, "sweep-cpu-s@"+tag)
		b.ReportMetric(r.HostPassS*1000, "host-pass-ms@"+tag)
		out, _ := json.Marshal(r)
		b.Logf("%s", out)
	}
}

func runAttached(b *testing.B, n int) attachedResult {
	ctx := context.Background()
	res := attachedResult{Attached: n}
	e := newScaleEnv(b)
	progress := scaleProgress(fmt.Sprintf("attached n=%d", n))
	b.StopTimer()
	t0 := time.Now()
	i, v := e.instance(), e.volume()
	e.attach(i, v)
	tpl := attachedTemplate(b, e, i, v)
	var next atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for k := next.Add(1); k < int64(n); k = next.Add(1) {
				if _, err := e.raw.Commit(ctx, volattach.Txn{Puts: tpl.clone(b, fmt.Sprintf("compute-%d", 2+k%100))}); err != nil {
					failed.Store(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	res.PopulateS = time.Since(t0).Seconds()
	progress("populated in %.1fs", res.PopulateS)

	r := e.recNew(func(c *compute.ReconcilerConfig) { c.SweepPageRate = -1 })
	b.StartTimer()
	res.SweepS, res.SweepCPUS, res.HostPassS, res.HostPassCPUS = 1e9, 1e9, 1e9, 1e9
	for range 2 {
		wall, cpu := healthyPassCPU(b, r.Sweep)
		res.SweepS, res.SweepCPUS = min(res.SweepS, wall), min(res.SweepCPUS, cpu)
	}
	for range 2 {
		wall, cpu := healthyPassCPU(b, r.RunHost)
		res.HostPassS, res.HostPassCPUS = min(res.HostPassS, wall), min(res.HostPassCPUS, cpu)
	}
	b.StopTimer()
	// instances, mappings, operations, attachments, volumes: 5n records.
	pages := float64(5*n) / volattach.DefaultScanPage
	res.SweepPaced = max(res.SweepS, pages/compute.DefaultSweepPageRate)
	progress("sweep %.2fs unpaced (%.2f CPU-s; %.0fs at the default pace), host pass %.3fs (%.3f CPU-s)",
		res.SweepS, res.SweepCPUS, res.SweepPaced, res.HostPassS, res.HostPassCPUS)
	return res
}

// template is one attached pair's records as JSON, and the IDs a copy
// replaces.
type template struct {
	records []json.RawMessage
	kinds   []func() volattach.Record
	ids     []string
	host    string
}

func attachedTemplate(b *testing.B, e *env, i *compute.Instance, v *volume.Volume) *template {
	ctx := context.Background()
	vol := &volume.Volume{ID: v.ID}
	inst := &compute.Instance{UUID: i.UUID}
	m := &compute.BlockDeviceMapping{VolumeID: v.ID, InstanceUUID: i.UUID}
	for _, rec := range []volattach.Record{vol, inst, m} {
		if err := e.raw.Get(ctx, rec); err != nil {
			b.Fatal(err)
		}
	}
	att := &volume.Attachment{ID: vol.AttachmentIDs[0]}
	if err := e.raw.Get(ctx, att); err != nil {
		b.Fatal(err)
	}
	op := e.lastOperation(i, v)
	ids := []string{v.ID, i.UUID, att.ID, op.ID, m.UUID}
	if m.OperationID != "" {
		ids = append(ids, m.OperationID)
	}
	t := &template{ids: ids, host: testHost}
	for _, rec := range []volattach.Record{vol, inst, m, att, op} {
		raw, err := json.Marshal(rec)
		if err != nil {
			b.Fatal(err)
		}
		t.records = append(t.records, raw)
	}
	t.kinds = []func() volattach.Record{
		func() volattach.Record { return &volume.Volume{} },
		func() volattach.Record { return &compute.Instance{} },
		func() volattach.Record { return &compute.BlockDeviceMapping{} },
		func() volattach.Record { return &volume.Attachment{} },
		func() volattach.Record { return &compute.Operation{} },
	}
	return t
}

// clone returns a copy of the template's records with fresh IDs, on host.
func (t *template) clone(b *testing.B, host string) []volattach.Record {
	var pairs []string
	for _, id := range t.ids {
		pairs = append(pairs, id, volume.NewUUID())
	}
	pairs = append(pairs, `"`+t.host+`"`, `"`+host+`"`)
	r := strings.NewReplacer(pairs...)
	var out []volattach.Record
	for k, raw := range t.records {
		rec := t.kinds[k]()
		if err := json.Unmarshal([]byte(r.Replace(string(raw))), rec); err != nil {
			b.Fatal(err)
		}
		out = append(out, rec)
	}
	return out
}

func scaleProgress(what string) func(string, ...any) {
	return func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "%s %s: %s\n", what, time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
	}
}

// newScaleEnv is newEnv on an embedded etcd of the benchmark's own, so
// that each size has a server (and a database) to itself.
func newScaleEnv(b *testing.B) *env {
	b.Helper()
	testenv.NeedCommand(b, "qemu-img")
	ctx, cancel := context.WithTimeout(context.Background(), etcdtest.StartTimeout)
	defer cancel()
	srv, err := etcd.StartServer(ctx, etcd.ServerConfig{Name: "scale"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Close() })
	cli, err := etcd.NewClient(ctx, etcd.ClientConfig{Endpoints: srv.Endpoints(), DialTimeout: etcdtest.StartTimeout})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cli.Close() })
	prefix := etcd.WithPrefix("/scale/")
	e := &env{t: b, faults: fake.NewFaults(), notes: &recorder{}, hosts: &hostsUp{down: map[string]bool{}}}
	e.raw = etcd.NewStore(cli, prefix)
	e.store = &fake.Store{Store: e.raw, Faults: e.faults}
	e.locker = etcd.NewLocker(cli, prefix, etcd.WithSessionTTL(5*time.Second))
	b.Cleanup(func() { e.locker.Close(context.Background()) })
	backend, err := file.New(file.Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	e.volumes, err = volume.NewService(volume.WithStore(e.store), volume.WithLocker(e.locker), volume.WithBackend(backend))
	if err != nil {
		b.Fatal(err)
	}
	vapi := &fake.VolumeAPI{VolumeAPI: e.volumes, Faults: e.faults}
	e.driver = fake.NewDriver(testHost, e.faults)
	apiQueue := etcd.NewQueue(cli, prefix)
	b.Cleanup(func() { apiQueue.Close(context.Background()) })
	agentQueue := etcd.NewQueue(cli, prefix, etcd.WithSessionTTL(5*time.Second))
	b.Cleanup(func() { agentQueue.Close(context.Background()) })
	acfg := compute.APIConfig{
		Store: e.store, Volumes: vapi, Queue: apiQueue, Locker: e.locker,
		Services: e.hosts, Notifier: e.notes,
	}
	e.mcfg = compute.ManagerConfig{
		Host: testHost, Store: e.store, Locker: e.locker, Queue: agentQueue,
		Volumes: vapi, Driver: e.driver, Notifier: e.notes, RetryInterval: 5 * time.Millisecond, RetryMax: 50 * time.Millisecond,
	}
	if e.api, err = compute.NewAPI(acfg); err != nil {
		b.Fatal(err)
	}
	e.stop = func() {}
	e.startAgent(e.mcfg)
	return e
}

// populateVolumes stores n available volumes, 32 at a time, as the records
// and history entries CreateVolume leaves (one commit per volume), on the
// file backend without a file.
func populateVolumes(ctx context.Context, e *env, n int) error {
	table := volume.VolumeStatusTable().Name()
	return parallel(n, func(int) error {
		now := time.Now().UTC()
		v := &volume.Volume{
			ID: volume.NewUUID(), Size: 1, SizeBytes: 1 << 20, Status: volume.StatusAvailable,
			AttachStatus: volume.AttachDetached, AvailabilityZone: "nova", Backend: file.BackendName,
			CreatedAt: now, UpdatedAt: now,
		}
		_, err := e.raw.Commit(ctx, volattach.Txn{Puts: []volattach.Record{v}, History: []volattach.Transition{
			{Table: table, Entity: v.Key(), To: string(volume.StatusCreating), Event: string(volume.EventCreate), Time: now, Operation: "create"},
			{Table: table, Entity: v.Key(), From: string(volume.StatusCreating), To: string(volume.StatusAvailable), Event: string(volume.EventCreateDone), Time: now, Operation: "create"},
		}})
		return err
	})
}

// populateOtherHosts stores n active instances on 100 hosts other than the
// agent's (records only: no guest), 32 at a time.
func populateOtherHosts(ctx context.Context, e *env, n int) error {
	return parallel(n, func(k int) error {
		i := &compute.Instance{
			UUID: volume.NewUUID(), VMState: compute.VMActive, LaunchedAt: time.Now().UTC(),
			Host: fmt.Sprintf("compute-%d", 2+k%100), AvailabilityZone: "nova", ProjectID: "p1", RootDeviceName: "/dev/vda",
		}
		_, err := e.raw.Commit(ctx, volattach.Txn{Puts: []volattach.Record{i}})
		return err
	})
}

// parallel runs do(0..n-1), 32 at a time, and returns the first error.
func parallel(n int, do func(k int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range 32 {
		wg.Go(func() {
			for k := next.Add(1) - 1; k < int64(n); k = next.Add(1) - 1 {
				if err := do(int(k)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// healthyPass times one pass and requires it to find, repair and collect
// nothing.
func healthyPass(b *testing.B, pass func(context.Context) (compute.Report, error)) float64 {
	s, _ := healthyPassCPU(b, pass)
	return s
}

// healthyPassCPU is healthyPass that also returns the CPU seconds the
// process (client and embedded etcd together) spent meanwhile: on a
// shared machine the wall time also measures the neighbours.
func healthyPassCPU(b *testing.B, pass func(context.Context) (compute.Report, error)) (wall, cpu float64) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	c0 := cpuSeconds()
	t0 := time.Now()
	rep, err := pass(ctx)
	d := time.Since(t0)
	cpu = cpuSeconds() - c0
	if err != nil || len(rep.Findings) > 0 || len(rep.Repairs) > 0 || rep.Collected > 0 {
		b.Fatalf("healthy pass: %v %+v", err, rep)
	}
	return d.Seconds(), cpu
}

// cpuSeconds is the user and system CPU time of the process so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// percentiles returns p50, p99 (as BenchmarkAttachDetach indexes them) and
// the mean, in milliseconds.
func percentiles(ds []time.Duration) (p50, p99, mean float64) {
	s := slices.Clone(ds)
	slices.Sort(s)
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	return ms(s[len(s)/2]), ms(s[(len(s)*99)/100]), ms(sum / time.Duration(len(s)))
}
