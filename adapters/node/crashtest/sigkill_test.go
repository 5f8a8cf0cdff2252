package crashtest_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/volattach/volattach/adapters/etcd/etcdtest"
	"github.com/volattach/volattach/adapters/libvirt"
	"github.com/volattach/volattach/adapters/libvirt/libvirttest"
	"github.com/volattach/volattach/adapters/node"
	"github.com/volattach/volattach/adapters/storage/file"
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

// TestAgentKilledMidAttach: a host agent process killed with SIGKILL in the
// middle of an attach to a real guest (the disk already in the guest,
// connection_info saved, the volume-side attach begun, both locks held)
// leaves an operation a new agent finishes once the dead agent's lease
// lapses: the sync caller gets its device, the guest has the disk exactly
// once with the volume id as serial, the volume is in-use with one attached
// attachment and a mapping holding connection_info, the reconciler's audit
// finds nothing drifting, and the volume detaches cleanly afterwards.
func TestAgentKilledMidAttach(t *testing.T) {
	testenv.NeedCommand(t, "qemu-img")
	virt := libvirttest.Adapter(t)
	guest := libvirttest.Guest(t, virt, true)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	dir := volumeDir(t)
	stateDir := t.TempDir() // the agent host's identity (its initiator name)
	host := "crash-agent-" + randomHex(t)
	endpoints, prefix := etcdtest.Endpoints(t), etcdtest.Prefix(t)
	plain := func(b *file.Backend) volume.Backend { return b }

	// The API side: a node of a host of its own, whose agent gets no work.
	apiCfg, err := agentConfig(endpoints, prefix, "crash-api-"+randomHex(t), dir, t.TempDir(), plain)
	if err != nil {
		t.Fatal(err)
	}
	api := startNode(t, apiCfg)

	// The agent process, blocking in the volume-side attach hook.
	agent := startAgent(t, map[string]string{
		envEndpoints: strings.Join(endpoints, ","), envPrefix: prefix, envHost: host,
		envVolumeDir: dir, envStateDir: stateDir, envGuest: guest,
	})
	instanceUUID := agent.expect(t, "ready ")

	v, err := api.Volumes().CreateVolume(ctx, volume.VolumeSpec{Backend: file.BackendName, SizeBytes: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	va, err := api.Compute().AttachVolume(ctx, compute.AttachRequest{
		InstanceUUID: instanceUUID, VolumeID: v.ID, DiskBus: compute.BusSCSI, Async: true,
	})
	if err != nil {
		t.Fatalf("attach: %v", err)
	}
	if got := agent.expect(t, "blocked "); got != v.ID {
		t.Fatalf("agent blocked in the attach of %s, want %s", got, v.ID)
	}
	op, err := api.Compute().Operation(ctx, va.Operation)
	if err != nil {
		t.Fatal(err)
	}
	if op.Step != compute.StepConnectionSaved {
		t.Fatalf("operation at step %s when the agent blocked, want %s", op.Step, compute.StepConnectionSaved)
	}
	requireDisks(ctx, t, virt, instanceUUID, v.ID, 1)

	agent.kill(t)

	// A new agent for the host, in this process and without the hook,
	// with its reconciler judging at once.
	agentCfg, err := agentConfig(endpoints, prefix, host, dir, stateDir, plain)
	if err != nil {
		t.Fatal(err)
	}
	agentCfg.Reconcile = node.ReconcileConfig{Grace: -1}
	resumed := startNode(t, agentCfg)

	res, err := api.Compute().WaitOperation(ctx, va.Operation)
	if err != nil {
		t.Fatalf("wait for the resumed attach: %v", err)
	}
	if err := res.Err(); err != nil || res.Step != compute.StepAttached || res.Device == "" {
		t.Fatalf("resumed attach ended at %s with device %q and error %v; want attached with a device", res.Step, res.Device, err)
	}
	requireDisks(ctx, t, virt, instanceUUID, v.ID, 1)
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

	if err := api.Compute().DetachVolume(ctx, compute.DetachRequest{InstanceUUID: instanceUUID, VolumeID: v.ID}); err != nil {
		t.Fatalf("detach: %v", err)
	}
	requireDisks(ctx, t, virt, instanceUUID, v.ID, 0)
	if got, err := api.Volumes().GetVolume(ctx, v.ID); err != nil || got.Status != volume.StatusAvailable {
		t.Fatalf("after detach the volume is %v (%v), want available", got.Status, err)
	}
	if err := api.Volumes().DeleteVolume(ctx, v.ID); err != nil {
		t.Fatalf("delete: %v", err)
	}
}

// requireDisks fails t unless the guest's live disks include exactly want
// disks with serial volumeID.
func requireDisks(ctx context.Context, t *testing.T, virt *libvirt.Adapter, instanceUUID, volumeID string, want int) {
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
	if n != want {
		t.Fatalf("guest has %d live disks with serial %s, want %d", n, volumeID, want)
	}
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
	n, err := node.Start(ctx, cfg)
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
