package chaos_test

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/volattach/volattach/adapters/chaos"
)

// reach reports whether from can open a TCP connection to l (inside to's
// namespace) and read the byte l's server writes, within a second.
func reach(t *testing.T, from *chaos.Member, to net.Listener) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	conn, err := from.DialContext(ctx, "tcp", to.Addr().String())
	if err != nil {
		return false
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Second))
	var b [1]byte
	_, err = io.ReadFull(conn, b[:])
	return err == nil && b[0] == 'x'
}

// reachEventually is reach, retried for up to half a minute while it
// differs from want: a port that comes back up, or a neighbour entry
// that failed during a cut, takes a moment to carry traffic again.
func reachEventually(t *testing.T, from *chaos.Member, to net.Listener, want bool) bool {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := reach(t, from, to)
		if got == want || !want || time.Now().After(deadline) {
			return got
		}
	}
}

// serve listens inside m's namespace on its address and answers every
// connection with one byte.
func serve(t *testing.T, m *chaos.Member) net.Listener {
	t.Helper()
	l, err := m.Listen("tcp", net.JoinHostPort(m.Addr.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("x"))
			c.Close()
		}
	}()
	return l
}

func rootState(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, args := range [][]string{{"-o", "link", "show"}, {"-o", "addr", "show"}, {"route", "show"}} {
		out, err := exec.Command("ip", args...).Output()
		if err != nil {
			t.Fatal(err)
		}
		// Link statistics and flags of the machine's own interfaces may
		// change under us; names and addresses are what the harness must
		// not touch.
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) > 1 {
				b.WriteString(f[1] + " ")
				if args[1] == "addr" && len(f) > 3 {
					b.WriteString(f[3])
				}
				b.WriteString("\n")
			}
		}
	}
	return b.String()
}

func ownNamespaces(t *testing.T, nw *chaos.Network) []string {
	t.Helper()
	var out []string
	for _, ns := range nw.Namespaces() {
		if _, err := os.Stat(filepath.Join("/run/netns", ns)); err == nil {
			out = append(out, ns)
		}
	}
	return out
}

// Members reach each other over the bridge; an isolated member and the two
// sides of a partition do not, until healed; the root namespace never gets
// a link, address or route; Close leaves no namespace behind.
func TestNetworkFaultsAndTeardown(t *testing.T) {
	chaos.NeedNamespaces(t)
	before := rootState(t)
	nw, err := chaos.NewNetwork()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nw.Close() })
	var ms []*chaos.Member
	for _, name := range []string{"a", "b", "c"} {
		m, err := nw.AddMember(name)
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	a, b, c := ms[0], ms[1], ms[2]
	la, lb, lc := serve(t, a), serve(t, b), serve(t, c)
	check := func(when string, want map[[2]int]bool) {
		t.Helper()
		ls := []net.Listener{la, lb, lc}
		for i, from := range ms {
			for j := range ls {
				if i == j {
					continue
				}
				if got := reachEventually(t, from, ls[j], want[[2]int{i, j}]); got != want[[2]int{i, j}] {
					t.Errorf("%s: %s reaches %s: %v, want %v", when, from.Name, ms[j].Name, got, !got)
				}
			}
		}
	}
	all := map[[2]int]bool{{0, 1}: true, {0, 2}: true, {1, 0}: true, {1, 2}: true, {2, 0}: true, {2, 1}: true}
	check("joined", all)
	if got := rootState(t); got != before {
		t.Errorf("root namespace changed:\nbefore:\n%s\nafter:\n%s", before, got)
	}

	if err := nw.Isolate("a"); err != nil {
		t.Fatal(err)
	}
	check("a isolated", map[[2]int]bool{{1, 2}: true, {2, 1}: true})
	if err := nw.Rejoin("a"); err != nil {
		t.Fatal(err)
	}
	check("a rejoined", all)

	if err := nw.Partition([]string{"a"}, []string{"b", "c"}); err != nil {
		t.Fatal(err)
	}
	check("a | b c", map[[2]int]bool{{1, 2}: true, {2, 1}: true})
	if err := nw.Reconnect("a"); err != nil {
		t.Fatal(err)
	}
	check("a reconnected", all)
	if err := nw.Partition([]string{"a"}, []string{"b", "c"}); err != nil {
		t.Fatal(err)
	}
	if err := nw.Heal(); err != nil {
		t.Fatal(err)
	}
	check("healed", all)

	if err := nw.Partition([]string{"a", "b"}, []string{"c"}); err != nil {
		t.Fatal(err)
	}
	if err := nw.Isolate("b"); err != nil {
		t.Fatal(err)
	}
	check("a b | c, b isolated", map[[2]int]bool{})
	if err := nw.Heal(); err != nil {
		t.Fatal(err)
	}
	check("healed again", all)

	if err := nw.Close(); err != nil {
		t.Fatal(err)
	}
	if left := ownNamespaces(t, nw); len(left) > 0 {
		t.Errorf("namespaces left after Close: %v", left)
	}
	if got := rootState(t); got != before {
		t.Errorf("root namespace changed after Close:\nbefore:\n%s\nafter:\n%s", before, got)
	}
}

// A process runs inside its member's namespace; Pause stops it (state T),
// Resume continues it, Kill ends it and Restart starts a new one; a test's
// cleanup ends it and removes the namespace even when the test fails.
func TestProcessFaults(t *testing.T) {
	nw := chaos.NewTestNetwork(t)
	m, err := nw.AddMember("p")
	if err != nil {
		t.Fatal(err)
	}
	p := chaos.StartTestProcess(t, m, chaos.ProcessSpec{Path: "sleep", Args: []string{"600"}, Log: filepath.Join(t.TempDir(), "p.log")})
	pid := p.PID()
	waitNamespace(t, pid, m.Namespace)
	if err := p.Pause(); err != nil {
		t.Fatal(err)
	}
	waitState(t, pid, "T")
	if err := p.Resume(); err != nil {
		t.Fatal(err)
	}
	waitState(t, pid, "S")
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := p.Restart(); err != nil {
		t.Fatal(err)
	}
	if p.PID() == pid || !p.Running() {
		t.Fatalf("restart: pid %d (was %d), running %v", p.PID(), pid, p.Running())
	}
	if err := syscallKill0(pid); err == nil {
		t.Errorf("killed pid %d still exists", pid)
	}
}

// Sweep removes the namespaces of a run whose process is gone (here a
// finished child's pid), with the processes left in them, and leaves a
// live run's alone.
func TestSweepRemovesDeadRunsOnly(t *testing.T) {
	chaos.NeedNamespaces(t)
	nw := chaos.NewTestNetwork(t)
	if _, err := nw.AddMember("live"); err != nil {
		t.Fatal(err)
	}
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	stale := chaos.NamePrefix + strconv.Itoa(dead.Process.Pid) + "-1-x"
	if out, err := exec.Command("ip", "netns", "add", stale).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "delete", stale).Run() })
	sleeper := exec.Command("ip", "netns", "exec", stale, "sleep", "600")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { sleeper.Wait(); close(exited) }()
	t.Cleanup(func() { sleeper.Process.Kill() })

	removed, err := chaos.Sweep()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(removed, stale) {
		t.Errorf("Sweep removed %v, not %s", removed, stale)
	}
	if _, err := os.Stat(filepath.Join("/run/netns", stale)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale namespace still there: %v", err)
	}
	select {
	case <-exited:
	case <-time.After(time.Minute):
		t.Error("the process in the stale namespace survived Sweep")
	}
	if got := ownNamespaces(t, nw); len(got) != 2 {
		t.Errorf("Sweep touched a live run: its namespaces now %v", got)
	}
}
