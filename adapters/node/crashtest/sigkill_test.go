package crashtest_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/adapters/etcd/etcdtest"
	"github.com/volattach/volattach/adapters/libvirt"
	"github.com/volattach/volattach/adapters/libvirt/libvirttest"
	"github.com/volattach/volattach/adapters/node"
	"github.com/volattach/volattach/adapters/testenv"
	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/volume"
)

func TestMain(m *testing.M) {
	if os.Getenv(agentEnv) != "" {
		os.Exit(runAgent())
	}
	os.Exit(etcdtest.Run(m))
}

// scene is one crash test's world: a real guest on the local libvirtd,
// the test's etcd, the storage of one backend (a file backend directory
// QEMU can reach, or the Ceph cluster), a node in this process acting as
// the API (a host of its own, whose agent gets no work), and the agent
// process of the guest's host.
type scene struct {
	virt      *libvirt.Adapter
	api       *node.Node
	agent     *agentProcess
	instance  string
	host      string
	storage   storage
	created   func(volumeID string)
	stateDir  string
	endpoints []string
	prefix    string
}

// newScene sets a scene up on the backend kind; blockAttach makes the
// agent block inside the volume-side attach hook.
func newScene(t *testing.T, kind string, blockAttach bool) *scene {
	t.Helper()
	testenv.NeedCommand(t, "qemu-img")
	sc := &scene{virt: libvirttest.Adapter(t)}
	// The storage's cleanup runs after the guest's: a guest still holding
	// an RBD image open would keep Ceph from removing it.
	sc.storage, sc.created = newStorage(t, kind)
	guest := libvirttest.Guest(t, sc.virt, true)
	sc.stateDir = t.TempDir() // the agent host's identity (its initiator name)
	sc.host = "crash-agent-" + randomHex(t)
	sc.endpoints, sc.prefix = etcdtest.Endpoints(t), etcdtest.Prefix(t)
	apiCfg, err := agentConfig(sc.endpoints, sc.prefix, "crash-api-"+randomHex(t), t.TempDir(), sc.storage, plain)
	if err != nil {
		t.Fatal(err)
	}
	sc.api = startNode(t, apiCfg)
	env := map[string]string{
		envEndpoints: strings.Join(sc.endpoints, ","), envPrefix: sc.prefix, envHost: sc.host,
		envStateDir: sc.stateDir, envGuest: guest,
	}
	maps.Copy(env, sc.storage.env())
	if blockAttach {
		env[envBlockAttach] = "1"
	}
	sc.agent = startAgent(t, env)
	sc.instance = sc.agent.expect(t, "ready ")
	return sc
}

// createVolume creates a 16 MiB volume on the scene's backend, its
// storage removed at cleanup if the test does not delete it.
func (sc *scene) createVolume(ctx context.Context, t *testing.T) *volume.Volume {
	t.Helper()
	v, err := sc.api.Volumes().CreateVolume(ctx, volume.VolumeSpec{Backend: sc.storage.kind, SizeBytes: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	sc.created(v.ID)
	return v
}

// resume starts a new agent for the host, in this process and without the
// hook, with its reconciler judging at once (it resumes what the dead agent
// left as soon as the dead agent's lease lapses).
func (sc *scene) resume(t *testing.T) *node.Node {
	t.Helper()
	cfg, err := agentConfig(sc.endpoints, sc.prefix, sc.host, sc.stateDir, sc.storage, plain)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Reconcile = node.ReconcileConfig{Grace: -1}
	return startNode(t, cfg)
}

// detachAndDelete detaches the volume and deletes it, checking the
// invariants again once the guest no longer has the disk.
func (sc *scene) detachAndDelete(ctx context.Context, t *testing.T, resumed *node.Node, volumeID string) {
	t.Helper()
	if err := sc.api.Compute().DetachVolume(ctx, compute.DetachRequest{InstanceUUID: sc.instance, VolumeID: volumeID}); err != nil {
		t.Fatalf("detach: %v", err)
	}
	requireDisks(ctx, t, sc.virt, sc.instance, volumeID, 0)
	requireInvariants(ctx, t, resumed)
	if err := sc.api.Volumes().DeleteVolume(ctx, volumeID); err != nil {
		t.Fatalf("delete: %v", err)
	}
}

// sigkillPoint is one place the tests kill the agent process.
type sigkillPoint struct {
	name string
	run  func(t *testing.T, kind string)
}

// sigkillPoints: inside the volume-side attach hook, and at the two
// checkpoints a watch can catch before the attach ends.
var sigkillPoints = []sigkillPoint{
	{"in_volume_attach", agentKilledMidAttach},
	{"at_" + string(compute.StepConnectionInitialized), func(t *testing.T, kind string) {
		agentKilledAtWatchedStep(t, kind, compute.StepConnectionInitialized)
	}},
	{"at_" + string(compute.StepConnectionSaved), func(t *testing.T, kind string) {
		agentKilledAtWatchedStep(t, kind, compute.StepConnectionSaved)
	}},
}

// TestAgentKilled runs every SIGKILL crash point on every backend (the
// file backend, and RBD on the Ceph cluster of scripts/env-ceph.sh) and
// reports, per backend, "SIGKILL crash points recovered (BACKEND): Y/Y"
// (testenv.Report: make test shows it).
func TestAgentKilled(t *testing.T) {
	for _, kind := range backends {
		t.Run(kind, func(t *testing.T) {
			ran, recovered, skipped := 0, 0, 0
			for _, p := range sigkillPoints {
				started, skip := false, false
				ok := t.Run(p.name, func(t *testing.T) {
					started = true
					defer func() { skip = t.Skipped() }()
					p.run(t, kind)
				})
				switch {
				case !started:
				case skip:
					skipped++
				default:
					ran++
					if ok {
						recovered++
					}
				}
			}
			line := fmt.Sprintf("SIGKILL crash points recovered (%s): %d/%d", kind, recovered, ran)
			if skipped > 0 {
				line += fmt.Sprintf(", %d skipped", skipped)
			}
			if n := ran + skipped; n < len(sigkillPoints) {
				line += fmt.Sprintf(" (%d of %d selected)", n, len(sigkillPoints))
			}
			testenv.Report(line)
		})
	}
}

// agentKilledMidAttach: a host agent process killed with SIGKILL in the
// middle of an attach to a real guest (the disk already in the guest,
// connection_info saved, the volume-side attach begun, both locks held)
// leaves an operation a new agent finishes once the dead agent's lease
// lapses: the sync caller gets its device, the guest has the disk exactly
// once with the volume id as serial, the volume is in-use with one attached
// attachment and a mapping holding connection_info, the reconciler's audit
// finds nothing drifting, every invariant holds against the guest's live
// domain XML, and the volume detaches cleanly afterwards.
func agentKilledMidAttach(t *testing.T, kind string) {
	sc := newScene(t, kind, true)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	api, instanceUUID := sc.api, sc.instance

	v := sc.createVolume(ctx, t)
	va, err := api.Compute().AttachVolume(ctx, compute.AttachRequest{
		InstanceUUID: instanceUUID, VolumeID: v.ID, DiskBus: compute.BusSCSI, Async: true,
	})
	if err != nil {
		t.Fatalf("attach: %v", err)
	}
	if got := sc.agent.expect(t, "blocked "); got != v.ID {
		t.Fatalf("agent blocked in the attach of %s, want %s", got, v.ID)
	}
	op, err := api.Compute().Operation(ctx, va.Operation)
	if err != nil {
		t.Fatal(err)
	}
	if op.Step != compute.StepConnectionSaved {
		t.Fatalf("operation at step %s when the agent blocked, want %s", op.Step, compute.StepConnectionSaved)
	}
	requireDisks(ctx, t, sc.virt, instanceUUID, v.ID, 1)

	sc.agent.kill(t)
	resumed := sc.resume(t)

	res, err := api.Compute().WaitOperation(ctx, va.Operation)
	if err != nil {
		t.Fatalf("wait for the resumed attach: %v", err)
	}
	if err := res.Err(); err != nil || res.Step != compute.StepAttached || res.Device == "" {
		t.Fatalf("resumed attach ended at %s with device %q and error %v; want attached with a device", res.Step, res.Device, err)
	}
	requireDisks(ctx, t, sc.virt, instanceUUID, v.ID, 1)
	got, err := api.Volumes().GetVolume(ctx, v.ID)
	if err != nil {
		t.Fatal(err)
	}
	atts, err := api.Volumes().Attachments(ctx, v.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != volume.StatusInUse || len(atts) != 1 || atts[0].AttachStatus != volume.AttachAttached {
		t.Fatalf("volume %s with %d attachments (%v), want in-use with one attached", got.Status, len(atts), atts)
	}
	shown, err := api.Compute().ShowAttachment(ctx, instanceUUID, v.ID)
	if err != nil || shown.Device != res.Device || shown.AttachmentID != atts[0].ID {
		t.Fatalf("mapping %+v (%v); want device %s and attachment %s", shown, err, res.Device, atts[0].ID)
	}
	findings, err := resumed.Reconciler().Audit(ctx)
	if err != nil || len(findings) != 0 {
		t.Fatalf("audit after the resume: %v %v; want nothing drifting", findings, err)
	}
	requireInvariants(ctx, t, resumed)
	sc.detachAndDelete(ctx, t, resumed, v.ID)
}

// agentKilledAtWatchedStep: the test watches the operation's record in
// etcd and kills the agent process with SIGKILL the moment the record
// reaches a checkpoint, wherever the agent then is in the next step (for
// connection_initialized: most often inside libvirt's attach of the disk;
// for connection_saved: inside or after the volume-side attach). A new
// agent resumes from the checkpoint: the attach ends attached, and every
// invariant holds against the guest's live domain XML.
func agentKilledAtWatchedStep(t *testing.T, kind string, step compute.Step) {
	sc := newScene(t, kind, false)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	v := sc.createVolume(ctx, t)
	// The watch opens before the attach, so it sees every
	// checkpoint the operation's record goes through.
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	ops := sc.api.Client().Watch(clientv3.WithRequireLeader(wctx), sc.prefix+string(volattach.KindOperation)+"/",
		clientv3.WithPrefix(), clientv3.WithCreatedNotify())
	if wr := <-ops; wr.Err() != nil {
		t.Fatal(wr.Err())
	}
	va, err := sc.api.Compute().AttachVolume(ctx, compute.AttachRequest{
		InstanceUUID: sc.instance, VolumeID: v.ID, DiskBus: compute.BusSCSI, Async: true,
	})
	if err != nil {
		t.Fatalf("attach: %v", err)
	}
	killAt(t, sc.agent, ops, va.Operation, step)
	stop()
	landed := "without the disk in the guest yet"
	if n := liveDisks(ctx, t, sc.virt, sc.instance, v.ID); n > 0 {
		landed = "with the disk already in the guest"
	}
	t.Logf("killed at %s, %s", step, landed)

	resumed := sc.resume(t)
	res, err := sc.api.Compute().WaitOperation(ctx, va.Operation)
	if err != nil {
		t.Fatalf("wait for the resumed attach: %v", err)
	}
	if err := res.Err(); err != nil || res.Step != compute.StepAttached {
		t.Fatalf("resumed attach ended at %s (%v); a crash after a forward checkpoint must resume forward", res.Step, err)
	}
	requireDisks(ctx, t, sc.virt, sc.instance, v.ID, 1)
	requireInvariants(ctx, t, resumed)
	sc.detachAndDelete(ctx, t, resumed, v.ID)
}

// killAt kills agent as soon as the watch shows operation id at step; it
// fails t if the operation ends first.
func killAt(t *testing.T, agent *agentProcess, ops clientv3.WatchChan, id string, step compute.Step) {
	t.Helper()
	for wr := range ops {
		if err := wr.Err(); err != nil {
			t.Fatalf("watching the operation: %v", err)
		}
		for _, ev := range wr.Events {
			var op compute.Operation
			if ev.Type != clientv3.EventTypePut || json.Unmarshal(ev.Kv.Value, &op) != nil || op.ID != id {
				continue
			}
			if op.Step == step {
				agent.kill(t)
				return
			}
			if op.Done() {
				t.Fatalf("operation ended at %s without the watch seeing %s", op.Step, step)
			}
		}
	}
	t.Fatalf("the watch ended before the operation reached %s", step)
}

// requireDisks fails t unless the guest's live disks include exactly want
// disks with serial volumeID.
func requireDisks(ctx context.Context, t *testing.T, virt *libvirt.Adapter, instanceUUID, volumeID string, want int) {
	t.Helper()
	if n := liveDisks(ctx, t, virt, instanceUUID, volumeID); n != want {
		t.Fatalf("guest has %d live disks with serial %s, want %d", n, volumeID, want)
	}
}

// liveDisks counts the guest's live disks with serial volumeID.
func liveDisks(ctx context.Context, t *testing.T, virt *libvirt.Adapter, instanceUUID, volumeID string) int {
	t.Helper()
	disks, err := virt.GuestDisks(ctx, instanceUUID, true)
	if err != nil {
		t.Fatalf("guest disks: %v", err)
	}
	n := 0
	for _, d := range disks {
		if d.Serial == volumeID {
			n++
		}
	}
	return n
}

// agentProcess is a running agent and its stdout lines.
type agentProcess struct {
	cmd    *exec.Cmd
	lines  <-chan string
	stderr *syncBuffer
}

// startAgent starts this test binary as an agent with env; it is killed at
// cleanup if still running.
func startAgent(t *testing.T, env map[string]string) *agentProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), agentEnv+"=1")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &agentProcess{cmd: cmd, stderr: &syncBuffer{}}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start agent: %v", err)
	}
	p.lines = readLines(bufio.NewScanner(out))
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return p
}

// expect waits for the agent's next line starting with prefix and returns
// the rest of it.
func (p *agentProcess) expect(t *testing.T, prefix string) string {
	t.Helper()
	timeout := time.NewTimer(agentStartWait)
	defer timeout.Stop()
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				t.Fatalf("agent exited before printing %q; its stderr:\n%s", prefix, p.stderr)
			}
			if rest, found := strings.CutPrefix(line, prefix); found {
				return rest
			}
		case <-timeout.C:
			t.Fatalf("agent printed no %q within %v; its stderr:\n%s", prefix, agentStartWait, p.stderr)
		}
	}
}

// kill sends SIGKILL and reaps the process.
func (p *agentProcess) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill agent: %v", err)
	}
	p.cmd.Wait() // "signal: killed" is the expected end
	for range p.lines {
	}
}

// startNode starts a node in this process, closed at cleanup.
func startNode(t *testing.T, cfg node.Config) *node.Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), agentStartWait)
	defer cancel()
	n, err := startHost(ctx, cfg)
	if err != nil {
		t.Fatalf("node.Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), libvirttest.CleanupTimeout)
		defer cancel()
		if err := n.Close(ctx); err != nil {
			t.Errorf("node.Close: %v", err)
		}
	})
	return n
}

// volumeDir is a directory QEMU (running as libvirt-qemu) can reach.
func volumeDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "volattach-crashtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func randomHex(t *testing.T) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// syncBuffer is a bytes.Buffer safe for the writer goroutine of exec and a
// reader in the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
