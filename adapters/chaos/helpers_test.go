package chaos_test

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// waitNamespace waits until pid's network namespace is ns's (`ip netns
// exec` enters it just after it starts).
func waitNamespace(t *testing.T, pid int, ns string) {
	t.Helper()
	b, err := os.Stat("/run/netns/" + ns)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		a, err := os.Stat("/proc/" + strconv.Itoa(pid) + "/ns/net")
		if err != nil {
			t.Fatal(err)
		}
		if os.SameFile(a, b) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d never entered namespace %s", pid, ns)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitState polls pid's state letter in /proc/pid/stat until it is want.
func waitState(t *testing.T, pid int, want string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i >= 0 && len(s) > i+2 && s[i+2:i+3] == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d never reached state %s: %s", pid, want, s)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func syscallKill0(pid int) error { return syscall.Kill(pid, 0) }
