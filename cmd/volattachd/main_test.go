package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/volattach/volattach/adapters/libvirt/libvirttest"
	"github.com/volattach/volattach/adapters/testenv"
)

// volattachd starts with an embedded etcd, answers /healthz, the API and
// /metrics (HTTP, etcd commit and lock metrics moving with the requests),
// and stops cleanly when its context ends.
func TestServeAndStopGracefully(t *testing.T) {
	libvirttest.Shared(t)
	testenv.NeedCommand(t, "qemu-img")
	dir, err := os.MkdirTemp("", "volattachd-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg, err := parseConfig([]string{"-listen", "127.0.0.1:0", "-data-dir", dir, "-backends", "file",
		"-host", "volattachd-test", "-log-level", "warning"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, ready) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("volattachd ended before serving: %v", err)
	case <-time.After(2 * time.Minute):
		t.Fatal("volattachd did not start within 2 minutes")
	}
	base := "http://" + addr
	get := func(path string, want int) string {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			t.Fatalf("GET %s: %d, want %d: %s", path, resp.StatusCode, want, body)
		}
		return string(body)
	}
	if h := get("/healthz", 200); !strings.Contains(h, `"status":"ok"`) {
		t.Fatalf("healthz %s", h)
	}
	req, _ := http.NewRequest("POST", base+"/volume/v3/p1/volumes", strings.NewReader(`{"volume": {"size": 1}}`))
	req.Header.Set("X-Auth-Token", "demo:p1")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("volume create: %d", resp.StatusCode)
	}
	m := get("/metrics", 200)
	for _, want := range []string{
		`volattach_http_requests_total{code="202",method="POST",route="POST /volume/v3/{project}/volumes"} 1`,
		`volattach_etcd_commits_total{result="committed"}`,
		`volattach_lock_wait_seconds_count{kind="volume",result="acquired"}`,
		`volattach_transitions_total{event="create",table="volume.status"}`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("volattachd stopped with %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("volattachd did not stop within a minute")
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Fatal("still answering after stopping")
	}
}

// A bad configuration is a usage error naming the flag.
func TestBadConfiguration(t *testing.T) {
	for _, args := range [][]string{
		{"-role", "wizard"},
		{"-auth", "keystone"},
		{"-etcd-endpoints", "http://127.0.0.1:2379", "-etcd-data-dir", "/tmp/x"},
		{"-backends", ""},
	} {
		if _, err := parseConfig(args, io.Discard); err == nil {
			t.Errorf("%v: accepted", args)
		}
	}
}
