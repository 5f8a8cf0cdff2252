package etcdtest

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// memberPkg is the etcd member command the chaos harness runs: the
// embedded server as a process of its own.
const memberPkg = "github.com/volattach/volattach/adapters/chaos/etcdmember"

// StartProcess builds and starts a single-member etcd in a child process on
// 127.0.0.1 and returns its client endpoints, for a test that must not
// count the server's work in its own process (memory per operation). The
// process is stopped (SIGTERM, then SIGKILL) and its data removed at
// t.Cleanup.
func StartProcess(t testing.TB) []string {
	t.Helper()
	dir := t.TempDir()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	bin := filepath.Join(dir, "etcdmember")
	var stderr bytes.Buffer
	build := exec.Command(goBin, "build", "-o", bin, memberPkg)
	build.Stderr = &stderr
	if err := build.Run(); err != nil {
		t.Fatalf("etcdtest: go build %s: %v: %s", memberPkg, err, strings.TrimSpace(stderr.String()))
	}
	client, peer := freePort(t), freePort(t)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peer)
	cmd := exec.Command(bin, "-name", "etcdtest", "-dir", filepath.Join(dir, "data"), "-addr", "127.0.0.1",
		"-client-port", fmt.Sprint(client), "-peer-port", fmt.Sprint(peer),
		"-initial-cluster", "etcdtest="+peerURL, "-token", "etcdtest-process")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("etcdtest: starting etcd member: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(StartTimeout):
			cmd.Process.Kill()
			<-exited
		}
	})
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "ready" {
				ready <- true
				return
			}
		}
		ready <- false
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatal("etcdtest: etcd member exited before it was ready")
		}
	case <-time.After(StartTimeout):
		t.Fatalf("etcdtest: etcd member not ready after %v", StartTimeout)
	}
	return []string{fmt.Sprintf("http://127.0.0.1:%d", client)}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
