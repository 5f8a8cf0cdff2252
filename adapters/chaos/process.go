package chaos

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// ErrProcess wraps failures to start or signal a process.
var ErrProcess = errors.New("chaos: process")

// ProcessSpec is a program to run inside a member's namespace.
type ProcessSpec struct {
	// Path and Args are the program and its arguments.
	Path string
	Args []string
	// Env is added to the harness's own environment.
	Env []string
	// Log receives the process's stdout and stderr, appended across
	// restarts.
	Log string
}

// Process is a program running in a member's namespace. Start runs it;
// Kill, Restart, Pause and Resume are the faults.
type Process struct {
	member *Member
	spec   ProcessSpec

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	paused bool
	starts int
}

// StartProcess runs spec inside m's namespace (through `ip netns exec`,
// which execs the program, so the pid is the program's own).
func StartProcess(m *Member, spec ProcessSpec) (*Process, error) {
	p := &Process{member: m, spec: spec}
	if err := p.start(); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Process) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return fmt.Errorf("%w: %s already running", ErrProcess, p.member.Name)
	}
	log, err := os.OpenFile(p.spec.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("%w: log of %s: %w", ErrProcess, p.member.Name, err)
	}
	defer log.Close()
	cmd := exec.Command("ip", append([]string{"netns", "exec", p.member.Namespace, p.spec.Path}, p.spec.Args...)...)
	cmd.Env = append(os.Environ(), p.spec.Env...)
	cmd.Stdout, cmd.Stderr = log, log
	// The process dies with the harness, even when the harness is killed
	// (what Sweep cannot reach).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%w: start %s: %w", ErrProcess, p.member.Name, err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	p.cmd, p.done, p.paused = cmd, done, false
	p.starts++
	return nil
}

// Member returns the member the process runs in.
func (p *Process) Member() *Member { return p.member }

// PID returns the running process's id, or 0.
func (p *Process) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Running reports whether the process is started and has not exited.
func (p *Process) Running() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// Exited returns a channel closed when the current run of the process
// exits (nil when it is not started).
func (p *Process) Exited() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

// Kill sends SIGKILL and waits for the process to be gone. A process that
// is not running is left as it is.
func (p *Process) Kill() error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd, p.done, p.paused = nil, nil, false
	p.mu.Unlock()
	if cmd == nil {
		return nil
	}
	cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-done:
		return nil
	case <-time.After(time.Minute):
		return fmt.Errorf("%w: %s (pid %d) still there a minute after SIGKILL", ErrProcess, p.member.Name, cmd.Process.Pid)
	}
}

// Restart starts the process again after Kill (or after it exited).
func (p *Process) Restart() error {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done != nil {
		select {
		case <-done:
			p.mu.Lock()
			p.cmd, p.done = nil, nil
			p.mu.Unlock()
		default:
			return fmt.Errorf("%w: restart of running %s", ErrProcess, p.member.Name)
		}
	}
	return p.start()
}

// Pause stops the process with SIGSTOP: it keeps its sockets and its
// etcd lease ages while it cannot renew it (Jepsen's paused lock holder).
func (p *Process) Pause() error { return p.signal(syscall.SIGSTOP, true) }

// Resume continues a paused process with SIGCONT.
func (p *Process) Resume() error { return p.signal(syscall.SIGCONT, false) }

// Paused reports whether the process is stopped by Pause.
func (p *Process) Paused() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.paused
}

func (p *Process) signal(sig syscall.Signal, paused bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return fmt.Errorf("%w: %s is not running", ErrProcess, p.member.Name)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("%w: %s to %s: %w", ErrProcess, sig, p.member.Name, err)
	}
	p.paused = paused
	return nil
}

// Stop ends the process for good: SIGCONT (a paused process cannot act on
// anything else), then SIGKILL, and waits for it.
func (p *Process) Stop() error {
	p.mu.Lock()
	if p.cmd != nil {
		p.cmd.Process.Signal(syscall.SIGCONT)
	}
	p.mu.Unlock()
	return p.Kill()
}
