package node_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/adapters/libvirt/libvirttest"
	"github.com/volattach/volattach/adapters/node"
	"github.com/volattach/volattach/adapters/node/crashtest"
	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/volume"
)

// Bounds of TestRBDSystemProperties under `go test` (make test): each step
// is a real attach, detach or node restart on Ceph and QEMU, about a
// second. rapid's flags (-rapid.checks, -rapid.steps) or RAPID_CHECKS and
// RAPID_STEPS override them.
const (
	rbdSystemChecks = 4
	rbdSystemSteps  = 15
)

// TestRBDSystemProperties is the whole-system property test's RBD
// counterpart on the real stack (compute's TestSystemProperties runs the
// fake hypervisor on an in-memory backend): random mixes of attaches and
// detaches of RBD volumes on the Ceph cluster of scripts/env-ceph.sh (one
// of them multiattach) to two running libvirt guests, and restarts of the
// node, every request through the compute API.
//
// Invariant: after every step every invariant of crashtest's World holds
// (the records in etcd, the guests' live disks and the exports agree,
// nothing is stuck, every operation ended, the history follows the
// tables), a successful attach leaves the volume attached to the instance
// with its disk in the guest, a successful detach leaves nothing of the
// pair, and a refused request is a 4xx that leaves the pair as it was.
func TestRBDSystemProperties(t *testing.T) {
	t.Parallel()
	defer rapidBounds(rbdSystemChecks, rbdSystemSteps)()
	var cfg node.Config
	s := newStack(t, withRBD(t), func(c *node.Config) { cfg = *c })
	// The node in use at the end (restarts replace it) is closed after the
	// volumes are released, which the cleanups registered below do.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), libvirttest.CleanupTimeout)
		defer cancel()
		if err := s.n.Close(ctx); err != nil {
			t.Errorf("node.Close: %v", err)
		}
	})
	sys := &rbdSystem{s: s, cfg: cfg, seen: map[string]int{}}
	// The guests' own adapter: a restart closes the node's.
	virt := libvirttest.Adapter(t)
	for range 2 {
		inst, err := s.n.RegisterGuest(testCtx(t), libvirttest.Guest(t, virt, true))
		if err != nil {
			t.Fatal(err)
		}
		sys.instances = append(sys.instances, inst)
	}
	sys.volumes = []*volume.Volume{s.volume("rbd"), s.volume("rbd"), sys.multiattachVolume(t)}
	rapid.Check(t, func(rt *rapid.T) {
		rt.Repeat(map[string]func(*rapid.T){
			"Attach":  sys.Attach,
			"Detach":  sys.Detach,
			"Restart": sys.Restart,
			"":        sys.Check,
		})
		sys.detachAll(rt) // the next run starts from nothing attached
	})
	t.Logf("seen: %v", sys.seen)
}

// rbdSystem is the state machine: the stack, the node's configuration
// (for restarts), and the guests and volumes it plays with.
type rbdSystem struct {
	s         *stack
	cfg       node.Config
	instances []*compute.Instance
	volumes   []*volume.Volume
	seen      map[string]int
}

func (m *rbdSystem) multiattachVolume(t *testing.T) *volume.Volume {
	v, err := m.s.n.Volumes().CreateVolume(testCtx(t), volume.VolumeSpec{Backend: "rbd", Size: 1, SizeBytes: 16 << 20, Multiattach: true})
	if err != nil {
		t.Fatalf("create a multiattach rbd volume: %v", err)
	}
	t.Cleanup(func() { m.s.release(v.ID) })
	return v
}

func (m *rbdSystem) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), testTimeout)
}

func (m *rbdSystem) world(t *rapid.T) *crashtest.World {
	ctx, cancel := m.ctx()
	defer cancel()
	w, err := crashtest.ReadWorld(ctx, m.s.n)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// pair draws an instance and a volume: most of the time one attached (or
// not) as attached says, so that requests mostly get past the API's
// gates; otherwise any pair, gates included.
func (m *rbdSystem) pair(t *rapid.T, attached bool) (*compute.Instance, *volume.Volume) {
	type pair struct {
		inst *compute.Instance
		vol  *volume.Volume
	}
	w := m.world(t)
	var all, wanted []pair
	for _, inst := range m.instances {
		for _, v := range m.volumes {
			all = append(all, pair{inst, v})
			if slices.Contains(w.Attached(v.ID), inst.UUID) == attached {
				wanted = append(wanted, pair{inst, v})
			}
		}
	}
	from := all
	if len(wanted) > 0 && rapid.IntRange(0, 4).Draw(t, "wanted pair") > 0 {
		from = wanted
	}
	p := rapid.SampledFrom(from).Draw(t, "pair")
	return p.inst, p.vol
}

// liveDisks counts the guest's live disks of the volume.
func (m *rbdSystem) liveDisks(t *rapid.T, inst *compute.Instance, v *volume.Volume) int {
	ctx, cancel := m.ctx()
	defer cancel()
	disks, err := m.s.n.Libvirt().GuestDisks(ctx, inst.UUID, true)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, d := range disks {
		if d.Serial == v.ID {
			n++
		}
	}
	return n
}

// Check runs after every step: every invariant of the world.
func (m *rbdSystem) Check(t *rapid.T) {
	for _, v := range m.world(t).Violations() {
		t.Error(v)
	}
}

// Attach attaches a volume (SCSI: the OS-less guest releases it on
// detach) and checks the answer kept its word.
func (m *rbdSystem) Attach(t *rapid.T) {
	inst, v := m.pair(t, false)
	before := slices.Contains(m.world(t).Attached(v.ID), inst.UUID)
	ctx, cancel := m.ctx()
	defer cancel()
	_, err := m.s.n.Compute().AttachVolume(ctx, compute.AttachRequest{InstanceUUID: inst.UUID, VolumeID: v.ID,
		DiskBus: compute.BusSCSI, SupportsMultiattach: true})
	after := slices.Contains(m.world(t).Attached(v.ID), inst.UUID)
	if err != nil {
		m.seen["attach refused"]++
		m.requireRefusal(t, "attach", err, before, after)
		return
	}
	m.seen["attach"]++
	if !after || m.liveDisks(t, inst, v) != 1 {
		t.Fatalf("attach of %s to %s succeeded, but attached=%v with %d live disks", v.ID, inst.UUID, after, m.liveDisks(t, inst, v))
	}
}

// Detach detaches a volume and checks the answer kept its word.
func (m *rbdSystem) Detach(t *rapid.T) {
	inst, v := m.pair(t, true)
	before := slices.Contains(m.world(t).Attached(v.ID), inst.UUID)
	ctx, cancel := m.ctx()
	defer cancel()
	err := m.s.n.Compute().DetachVolume(ctx, compute.DetachRequest{InstanceUUID: inst.UUID, VolumeID: v.ID})
	after := slices.Contains(m.world(t).Attached(v.ID), inst.UUID)
	if err != nil {
		m.seen["detach refused"]++
		m.requireRefusal(t, "detach", err, before, after)
		return
	}
	m.seen["detach"]++
	if after || m.liveDisks(t, inst, v) != 0 || m.s.mappingOf(t, inst, v) {
		t.Fatalf("detach of %s from %s succeeded, but attached=%v with %d live disks", v.ID, inst.UUID, after, m.liveDisks(t, inst, v))
	}
}

// requireRefusal: a refused request is a 4xx and leaves the pair as it
// was.
func (m *rbdSystem) requireRefusal(t *rapid.T, what string, err error, before, after bool) {
	if status := compute.HTTPStatus(err); status < 400 || status >= 500 {
		t.Fatalf("%s failed with %v (HTTP %d); only refusals (4xx) are expected here", what, err, status)
	}
	if before != after {
		t.Fatalf("refused %s (%v) changed the pair: attached %v, then %v", what, err, before, after)
	}
	t.Logf("%s refused: %v", what, err)
}

// Restart closes the node and starts a new one on the same records (one
// draw in three: attaches and detaches are the test's matter).
func (m *rbdSystem) Restart(t *rapid.T) {
	if rapid.IntRange(0, 2).Draw(t, "restart") > 0 {
		t.Skip("no restart this time")
	}
	ctx, cancel := m.ctx()
	defer cancel()
	if err := m.s.n.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	n, err := node.Start(ctx, m.cfg)
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	m.s.n = n
	m.seen["restart"]++
}

// detachAll detaches every volume from every instance it is attached to,
// checking the invariants after.
func (m *rbdSystem) detachAll(t *rapid.T) {
	w := m.world(t)
	ctx, cancel := m.ctx()
	defer cancel()
	for _, v := range m.volumes {
		for _, inst := range w.Attached(v.ID) {
			if err := m.s.n.Compute().DetachVolume(ctx, compute.DetachRequest{InstanceUUID: inst, VolumeID: v.ID}); err != nil {
				t.Fatalf("detach %s from %s at the end of the run: %v", v.ID, inst, err)
			}
		}
	}
	m.Check(t)
}

// mappingOf reports whether a mapping of v on inst exists.
func (s *stack) mappingOf(t *rapid.T, inst *compute.Instance, v *volume.Volume) bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ids, err := s.n.Store().List(ctx, volattach.KindMapping, compute.MappingPrefix(v.ID), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	return slices.Contains(ids, compute.MappingPrefix(v.ID)+inst.UUID)
}

// rapidBounds sets rapid's number of checks and steps unless the command
// line or the environment set them, and returns a func restoring them.
func rapidBounds(checks, steps int) func() {
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var undo []func()
	for name, value := range map[string]int{"rapid.checks": checks, "rapid.steps": steps} {
		env := map[string]string{"rapid.checks": "RAPID_CHECKS", "rapid.steps": "RAPID_STEPS"}[name]
		f := flag.Lookup(name)
		if _, inEnv := os.LookupEnv(env); f == nil || set[name] || inEnv {
			continue
		}
		old := f.Value.String()
		if err := f.Value.Set(strconv.Itoa(value)); err != nil {
			panic(fmt.Sprintf("set %s: %v", name, err))
		}
		undo = append(undo, func() { _ = f.Value.Set(old) })
	}
	return func() {
		for _, u := range undo {
			u()
		}
	}
}
