package fake

import (
	"context"
	"errors"
	"sync"
)

// ErrInjected is the error a step fails with when Fail was given none.
var ErrInjected = errors.New("fake: injected fault")

// Faults decides, step by step, whether a fake proceeds, fails, or hangs.
// Steps are named by the fakes (see the Step* constants of Driver, the
// method names of VolumeAPI, and the history events of Store). The zero
// value is not usable; use NewFaults. Faults is safe for concurrent use.
type Faults struct {
	mu    sync.Mutex
	rules map[string]*rule
	calls map[string]int
}

type rule struct {
	err   error
	times int // remaining failures; <0 forever
	hold  *Hold
}

// NewFaults returns Faults that let every step proceed.
func NewFaults() *Faults {
	return &Faults{rules: map[string]*rule{}, calls: map[string]int{}}
}

// Fail makes every later call of step fail with err (ErrInjected if nil).
func (f *Faults) Fail(step string, err error) { f.failN(step, err, -1) }

// FailOnce makes the next call of step fail with err (ErrInjected if nil).
func (f *Faults) FailOnce(step string, err error) { f.failN(step, err, 1) }

func (f *Faults) failN(step string, err error, n int) {
	if err == nil {
		err = ErrInjected
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules[step] = &rule{err: err, times: n}
}

// Hang makes the next call of step block until the returned Hold is
// released (the step then proceeds) or the call's context is done (the
// step then fails with the context's error).
func (f *Faults) Hang(step string) *Hold {
	h := &Hold{reached: make(chan struct{}), release: make(chan struct{})}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules[step] = &rule{hold: h, times: 1}
	return h
}

// Clear removes any fault on step.
func (f *Faults) Clear(step string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.rules, step)
}

// Calls returns how many times step was reached.
func (f *Faults) Calls(step string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[step]
}

// Check is called by a fake at step: it counts the call and returns the
// injected error, blocks on an injected hang, or returns nil.
func (f *Faults) Check(ctx context.Context, step string) error {
	if f == nil {
		return nil
	}
	f.mu.Lock()
	f.calls[step]++
	r := f.rules[step]
	var err error
	var hold *Hold
	if r != nil {
		err, hold = r.err, r.hold
		if r.times > 0 {
			r.times--
			if r.times == 0 {
				delete(f.rules, step)
			}
		}
	}
	f.mu.Unlock()
	if hold != nil {
		return hold.wait(ctx)
	}
	return err
}

// Hold is one injected hang.
type Hold struct {
	once    sync.Once
	reached chan struct{}
	release chan struct{}
	freed   sync.Once
}

// Reached is closed when a call reaches the hanging step.
func (h *Hold) Reached() <-chan struct{} { return h.reached }

// Release lets the hanging call proceed. Releasing twice is harmless.
func (h *Hold) Release() { h.freed.Do(func() { close(h.release) }) }

func (h *Hold) wait(ctx context.Context) error {
	h.once.Do(func() { close(h.reached) })
	select {
	case <-h.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
