package iscsi

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/volattach/volattach/volume"
)

// fakeTgtd serves tgtd's management protocol on a unix socket: it records
// each request's mode, op and parameters and answers success.
type fakeTgtd struct {
	path string
	mu   sync.Mutex
	reqs []fakeTgtdReq
}

type fakeTgtdReq struct {
	mode, op uint32
	lld      string
	params   string
}

func newFakeTgtd(t *testing.T) *fakeTgtd {
	t.Helper()
	f := &fakeTgtd{path: filepath.Join(t.TempDir(), "socket.0")}
	l, err := net.Listen("unix", f.path)
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
			f.serve(c)
		}
	}()
	return f
}

func (f *fakeTgtd) serve(c net.Conn) {
	defer c.Close()
	hdr := make([]byte, tgtReqLen)
	if _, err := io.ReadFull(c, hdr); err != nil {
		return
	}
	n := binary.LittleEndian.Uint32(hdr[72:])
	if n < tgtReqLen || n > 1<<16 {
		return
	}
	body := make([]byte, n-tgtReqLen)
	if _, err := io.ReadFull(c, body); err != nil {
		return
	}
	f.mu.Lock()
	f.reqs = append(f.reqs, fakeTgtdReq{
		mode: binary.LittleEndian.Uint32(hdr[0:]), op: binary.LittleEndian.Uint32(hdr[4:]),
		lld: strings.TrimRight(string(hdr[8:72]), "\x00"), params: strings.TrimSuffix(string(body), "\x00"),
	})
	f.mu.Unlock()
	var rsp [tgtRspLen]byte
	binary.LittleEndian.PutUint32(rsp[4:], tgtRspLen)
	_, _ = c.Write(rsp[:])
}

func (f *fakeTgtd) requests() []fakeTgtdReq {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeTgtdReq(nil), f.reqs...)
}

// TestCHAPSecretOnNoCommandLine (review M1): /proc/PID/cmdline is readable
// by every local user, so the CHAP secret must be on no command line. A
// fake tgtadm (no tgtd involved) records its own /proc/self/cmdline; a fake
// tgtd socket records the account request, which must carry the secret.
func TestCHAPSecretOnNoCommandLine(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	log := filepath.Join(t.TempDir(), "argv.log")
	const id = "vol-a"
	volFile := filepath.Join(dir, id)
	if err := os.WriteFile(volFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(t.TempDir(), "tgtadm")
	body := `#!/bin/sh
printf '%s | mode %s\n' "$(tr '\000' ' ' < /proc/$$/cmdline)" "$(stat -c %a /proc/$$/cmdline)" >> ` + log + `
case "$*" in
*"--op show --mode target"*) printf 'Target 1: iqn.2026-11.io.volattach:` + id + `\n    LUN information:\n        LUN: 1\n            Backing store path: ` + volFile + `\n    Account information:\n    ACL information:\n' ;;
*"--op show --mode account"*) echo "Account list:" ;;
esac
exit 0
`
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	tgtd := newFakeTgtd(t)
	b, err := New(Config{Dir: dir, StateDir: state, Tgtadm: script, TgtdSocket: tgtd.path})
	if err != nil {
		t.Fatal(err)
	}
	c := volume.Connector{Host: "h", IP: "127.0.0.1"}
	if err := b.CreateExport(context.Background(), volume.Volume{ID: id}, c); err != nil {
		t.Fatal(err)
	}
	secret, err := b.readSecret(id)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(log)
	if err != nil || len(raw) == 0 {
		t.Fatalf("the fake tgtadm recorded no call (%v)", err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.Contains(line, secret) {
			t.Fatalf("CHAP secret of %s visible in tgtadm's world-readable /proc/PID/cmdline:\n  %s", id, strings.ReplaceAll(line, secret, secret[:4]+"…(the 20-char secret)"))
		}
	}
	user, _ := b.AccountUser(id)
	want := fakeTgtdReq{mode: tgtModeAccount, op: tgtOpNew, lld: "iscsi", params: "user=" + user + ",password=" + secret}
	if got := tgtd.requests(); len(got) != 1 || got[0] != want {
		t.Fatalf("tgtd socket requests %d (%+v); want one new-account request for %s with its secret", len(got), got, user)
	}
}
