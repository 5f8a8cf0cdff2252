package chaos_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/adapters/chaos"
	"github.com/volattach/volattach/adapters/node"
	"github.com/volattach/volattach/adapters/node/crashtest"
	"github.com/volattach/volattach/adapters/testenv"
	"github.com/volattach/volattach/compute"
)

// Environment of TestChaos.
const (
	// envDuration is how long the workload and its faults run (a Go
	// duration). Unset, the test is skipped: `make chaos` and `make test`
	// set it.
	envDuration = "CHAOS_DURATION"
	// envSeed replays a run's fault schedule (and its clients' choices).
	envSeed = "CHAOS_SEED"
	// leaseTTL is the API servers' and agents' lease TTL: a paused agent
	// loses its locks and queue claims this long after it stopped.
	leaseTTL = 4 * time.Second
	// clientsPerAPI is how many concurrent clients each API server gets.
	clientsPerAPI = 3
)

// TestChaos runs volattach as a small cloud, each process in a network
// namespace of its own: a three-member etcd cluster, host agents that each
// drive their own guests on the local libvirtd, and API servers. Clients
// attach, detach, create and read over HTTP while a seeded schedule
// partitions, isolates (the etcd leader among them), kills and restarts,
// and pauses for longer than their lease the members; then everything is
// healed, one reconciler pass runs, and the run must show: a linearizable
// history per volume, no invariant violated, no acknowledged attach or
// detach lost. The summary line is printed last.
func TestChaos(t *testing.T) {
	s := os.Getenv(envDuration)
	if s == "" {
		t.Skipf("%s is not set: `make chaos` runs this test (a longer run: %s=20m)", envDuration, envDuration)
	}
	duration, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("%s=%q: %v", envDuration, s, err)
	}
	seed := rand.Uint64() >> 1
	if s := os.Getenv(envSeed); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", envSeed, s, err)
		}
		seed = v
	}
	t.Logf("chaos: seed %d (replay with %s=%d), workload %s", seed, envSeed, seed, duration)

	began := time.Now()
	d := deploy(t, layout{apis: 2, hosts: 2, guestsPerHost: 2, ttl: leaseTTL})
	var targets chaos.Targets
	for _, m := range d.etcd.Members {
		targets.Etcd = append(targets.Etcd, m.Name)
	}
	for _, s := range d.agents {
		targets.Hosts = append(targets.Hosts, s.name)
	}
	for _, s := range d.apis {
		targets.APIs = append(targets.APIs, s.name)
	}
	targets.PauseAtLeast = leaseTTL + 2*time.Second
	schedule := chaos.Schedule(seed, duration, targets)
	t.Logf("chaos: schedule:\n%s", chaos.FormatSchedule(schedule))
	t.Cleanup(func() {
		if t.Failed() {
			for _, s := range d.services() {
				t.Logf("chaos: last lines of %s:\n%s", s.name, tail(s.log, 25))
			}
		}
	})

	t.Logf("chaos: deployed in %s", time.Since(began).Round(time.Millisecond))
	setup, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	p, err := d.seedPool(setup, 4, 8)
	cancel()
	if err != nil {
		t.Fatal(err)
	}

	// The workload and the faults, side by side.
	h := chaos.NewHistory()
	var n tally
	var faults faultCounts
	start := time.Now()
	wctx, stop := context.WithDeadline(context.Background(), start.Add(duration))
	var wg sync.WaitGroup
	for i, api := range d.apis {
		for c := range clientsPerAPI {
			id := i*clientsPerAPI + c
			wg.Add(1)
			go func() {
				defer wg.Done()
				d.runClient(wctx, id, seed, api, p, h, &n)
			}()
		}
	}
	d.runFaults(t, start, schedule, &faults)
	wg.Wait()
	stop()

	t.Logf("chaos: answers: %v", n.answers)
	t.Logf("chaos: workload ended after %s", time.Since(start).Round(time.Millisecond))
	// Heal, settle, one reconciler pass.
	healed := time.Now()
	d.heal(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if err := d.etcd.WaitHealthy(ctx, d.client); err != nil {
		t.Fatal(err)
	}
	t.Logf("chaos: etcd healthy after %s", time.Since(healed).Round(time.Millisecond))
	for _, s := range d.services() {
		if err := d.waitHealthy(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("chaos: services healthy after %s", time.Since(healed).Round(time.Millisecond))
	obs := d.observer(ctx)
	// The agents resume what the faults interrupted by themselves (a
	// claim of a dead or paused agent lapses with its lease); what no
	// agent owns any more (an operation whose API server died before it
	// was queued) is the reconciler's.
	early, cancelEarly := context.WithTimeout(ctx, 2*leaseTTL+2*time.Second)
	open := d.settle(early, obs)
	cancelEarly()
	t.Logf("chaos: %d operations open %s after healing", len(open), time.Since(healed).Round(time.Millisecond))
	d.reconcile(ctx, t, obs)
	t.Logf("chaos: reconciled after %s", time.Since(healed).Round(time.Millisecond))
	if open := d.settle(ctx, obs); len(open) > 0 {
		t.Errorf("chaos: operations still open after healing and a reconciler pass: %v", open)
	}

	t.Logf("chaos: healed and settled in %s", time.Since(healed).Round(time.Millisecond))
	// The checks.
	checked := time.Now()
	w, err := crashtest.ReadWorld(ctx, obs)
	if err != nil {
		t.Fatal(err)
	}
	violations := w.Violations()
	for _, v := range violations {
		t.Errorf("invariant: %s", v)
	}
	// The world as it ends is one more read of every pair, after
	// everything else.
	for _, v := range p.snapshot() {
		for _, i := range d.instances {
			h.Invoke(-1, chaos.VolumeOp{Kind: chaos.OpRead, Volume: v.id, Instance: i.uuid, Multiattach: v.multi}).
				Complete(chaos.VolumeOutcome{Result: chaos.ResultOK, Attached: w.Attached(v.id)})
		}
	}
	ops := h.Operations()
	lin := chaos.Linearizable(ops, 3*time.Minute)
	if lin != porcupine.Ok {
		t.Errorf("the history of %d operations is not linearizable (%s)", len(ops), lin)
	}
	lost := lostAcknowledged(ops, w)
	for _, l := range lost {
		t.Errorf("acknowledged write lost: %s", l)
	}
	t.Logf("chaos: checked in %s", time.Since(checked).Round(time.Millisecond))
	rejected := countInLogs(d.services(), volattach.ErrLockLost.Error())

	linearizable := map[porcupine.CheckResult]string{porcupine.Ok: "yes", porcupine.Illegal: "no", porcupine.Unknown: "unknown (checker timed out)"}[lin]
	summary := fmt.Sprintf("chaos: seed %d, ops %d (ok %d / failed %d / unknown %d), faults %d (partitions %d, kills %d, pauses %d), linearizable: %s, invariant violations: %d, acknowledged writes lost: %d, stale-holder writes rejected: %d/%d",
		seed, n.Total(), n.OK, n.Failed, n.Unknown, faults.total, faults.partitions, faults.kills, faults.pauses,
		linearizable, len(violations), len(lost), rejected, rejected)
	t.Log(summary)
	testenv.Report(summary)
}

// settle waits until every operation has ended, or ctx ends; it returns
// the operations still open.
func (d *deployment) settle(ctx context.Context, n *node.Node) []string {
	for {
		open, err := openOperations(ctx, n)
		if err == nil && len(open) == 0 {
			return nil
		}
		if err != nil {
			open = append(open, err.Error())
		}
		select {
		case <-ctx.Done():
			return open
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func openOperations(ctx context.Context, n *node.Node) ([]string, error) {
	ids, err := n.Store().List(ctx, volattach.KindOperation, "", "", 0)
	if err != nil {
		return nil, err
	}
	var open []string
	for _, id := range ids {
		op := &compute.Operation{ID: id}
		if err := n.Store().Get(ctx, op); err != nil {
			return nil, err
		}
		if !op.Done() {
			open = append(open, fmt.Sprintf("%s %s at %s on %s", op.Kind, op.ID, op.Step, op.Host))
		}
	}
	return open, nil
}

// reconcile runs one reconciler pass per host, judging everything at once
// (no API call is running any more), through this process's view of the
// shared libvirtd.
func (d *deployment) reconcile(ctx context.Context, t *testing.T, n *node.Node) {
	t.Helper()
	for _, s := range d.agents {
		r, err := compute.NewReconciler(compute.ReconcilerConfig{
			Store: n.Store(), Locker: n.Locker(), Volumes: n.Volumes(), Queue: n.Queue(),
			Host: s.name, Driver: n.Libvirt(), Grace: -1, Retention: -1,
		})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := r.RunOnce(ctx)
		if err != nil {
			t.Errorf("chaos: reconciler pass for %s: %v", s.name, err)
		}
		for _, f := range rep.Findings {
			t.Logf("chaos: reconciler for %s found: %s", s.name, f)
		}
	}
}

// lostAcknowledged returns the acknowledged attaches and detaches the
// final world contradicts: for each (volume, instance) pair, the last
// acknowledged attach or detach that every other attach or detach of the
// pair precedes (so nothing may have undone it) must show in the world.
func lostAcknowledged(ops []porcupine.Operation, w *crashtest.World) []string {
	byPair := map[[2]string][]porcupine.Operation{}
	for _, o := range ops {
		in := o.Input.(chaos.VolumeOp)
		if in.Kind != chaos.OpRead {
			k := [2]string{in.Volume, in.Instance}
			byPair[k] = append(byPair[k], o)
		}
	}
	var lost []string
	for k, pops := range byPair {
		for xi, x := range pops {
			if x.Output.(chaos.VolumeOutcome).Result != chaos.ResultOK {
				continue
			}
			last := true
			for yi, y := range pops {
				// An unknown outcome never returns (math.MaxInt64).
				if yi != xi && y.Return >= x.Call {
					last = false
					break
				}
			}
			if !last {
				continue
			}
			attached := slices.Contains(w.Attached(k[0]), k[1])
			if want := x.Input.(chaos.VolumeOp).Kind == chaos.OpAttach; attached != want {
				lost = append(lost, fmt.Sprintf("%s of volume %s to %s acknowledged, but the volume is attached to %s",
					x.Input.(chaos.VolumeOp).Kind, k[0], k[1], strings.Join(w.Attached(k[0]), ",")))
			}
		}
	}
	slices.Sort(lost)
	return lost
}
