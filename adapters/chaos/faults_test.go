package chaos_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/volattach/volattach/adapters/chaos"
)

// faultCounts are the faults a run applied, by kind.
type faultCounts struct {
	mu                               sync.Mutex
	total, partitions, kills, pauses int
}

func (c *faultCounts) add(k chaos.FaultKind) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total++
	switch k {
	case chaos.FaultPartition, chaos.FaultIsolateLeader:
		c.partitions++
	case chaos.FaultKill:
		c.kills++
	case chaos.FaultPause:
		c.pauses++
	}
}

// runFaults applies the schedule from start: each fault at its time, and
// its undoing For later. It returns once every fault is undone (the
// schedule ends them all by the run's end).
func (d *deployment) runFaults(t *testing.T, start time.Time, schedule []chaos.Fault, counts *faultCounts) {
	var wg sync.WaitGroup
	for _, f := range schedule {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Until(start.Add(f.At)))
			undo := d.apply(t, f)
			if undo == nil {
				return
			}
			counts.add(f.Kind)
			time.Sleep(time.Until(start.Add(f.At + f.For)))
			undo()
		}()
	}
	wg.Wait()
}

// apply starts fault f and returns how to end it (nil when it could not
// start: the run logs why and goes on).
func (d *deployment) apply(t *testing.T, f chaos.Fault) func() {
	logf := func(format string, args ...any) { t.Logf("chaos: %s: "+format, append([]any{f}, args...)...) }
	target := f.Target
	switch f.Kind {
	case chaos.FaultIsolateLeader:
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		leader, err := d.etcd.Leader(ctx, d.client)
		cancel()
		if err != nil {
			logf("no leader to isolate: %v", err)
			return nil
		}
		if err := d.nw.Isolate(leader); err != nil {
			logf("%v", err)
			return nil
		}
		logf("isolated %s", leader)
		return func() {
			if err := d.nw.Rejoin(leader); err != nil {
				logf("rejoin: %v", err)
			}
		}
	case chaos.FaultPartition:
		// The target against every other member but the clients' (an API
		// server cut off from etcd still takes requests, which hang).
		var rest []string
		for _, m := range d.nw.Members() {
			if m != target && m != d.client.Name {
				rest = append(rest, m)
			}
		}
		if err := d.nw.Partition([]string{target}, rest); err != nil {
			logf("%v", err)
			return nil
		}
		return func() {
			if err := d.nw.Reconnect(target); err != nil {
				logf("reconnect: %v", err)
			}
		}
	case chaos.FaultKill:
		p := d.process(target)
		if err := p.Kill(); err != nil {
			logf("%v", err)
			return nil
		}
		return func() {
			if err := p.Restart(); err != nil {
				logf("restart: %v", err)
			}
		}
	case chaos.FaultPause:
		p := d.process(target)
		if err := p.Pause(); err != nil {
			logf("%v", err)
			return nil
		}
		return func() {
			if err := p.Resume(); err != nil {
				logf("resume: %v", err)
			}
		}
	}
	return nil
}

// heal ends whatever fault is left: every cut mended, every process
// running and not paused.
func (d *deployment) heal(t *testing.T) {
	if err := d.nw.Heal(); err != nil {
		t.Errorf("chaos: heal: %v", err)
	}
	procs := []*chaos.Process{}
	for _, m := range d.etcd.Members {
		procs = append(procs, m.Process)
	}
	for _, s := range d.services() {
		procs = append(procs, s.proc)
	}
	for _, p := range procs {
		if p.Paused() {
			p.Resume()
		}
		if !p.Running() {
			if err := p.Restart(); err != nil {
				t.Errorf("chaos: restart %s: %v", p.Member().Name, err)
			}
		}
	}
}
