package openstack_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/adapters/etcd"
	"github.com/volattach/volattach/adapters/etcd/etcdtest"
	"github.com/volattach/volattach/adapters/libvirt"
	"github.com/volattach/volattach/adapters/libvirt/libvirttest"
	"github.com/volattach/volattach/adapters/node"
	"github.com/volattach/volattach/adapters/openstack"
	"github.com/volattach/volattach/adapters/storage/file"
	"github.com/volattach/volattach/adapters/storage/iscsi"
	"github.com/volattach/volattach/adapters/testenv"
	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/volume"
)

func TestMain(m *testing.M) { os.Exit(etcdtest.Run(m)) }

// testTimeout bounds one test's own calls.
const testTimeout = 3 * time.Minute

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// stack is a node (etcdtest's server under the test's own prefix, the
// file and iSCSI backends, the real libvirtd) served over loopback HTTP by
// the openstack adapter.
type stack struct {
	t   testing.TB
	n   *node.Node
	srv *httptest.Server
	reg *prometheus.Registry
}

// newStack starts the stack for t with auth (nil: NoAuth). It holds the
// shared libvirtd lock and skips t (fails it when VOLATTACH_REQUIRE_ENV=1)
// without libvirtd, tgtd or qemu-img.
func newStack(t testing.TB, auth openstack.Authenticator) *stack {
	t.Helper()
	libvirttest.Shared(t)
	testenv.NeedCommand(t, "qemu-img", "tgtadm")
	out, err := exec.Command("tgtadm", "--lld", "iscsi", "--op", "show", "--mode", "target").CombinedOutput()
	if err != nil {
		err = fmt.Errorf("%v: %s", err, out)
	}
	testenv.Need(t, "tgtd", err)
	dir := volumeDir(t)
	cfg := node.Config{
		Host: "openstack-test-" + randomHex(4),
		Etcd: node.EtcdConfig{
			Client: &etcd.ClientConfig{Endpoints: etcdtest.Endpoints(t), DialTimeout: etcdtest.StartTimeout},
			Prefix: etcdtest.Prefix(t),
		},
		File:           &file.Config{Dir: filepath.Join(dir, "file")},
		ISCSI:          &iscsi.Config{Dir: filepath.Join(dir, "iscsi"), StateDir: t.TempDir()},
		DefaultDiskBus: compute.BusSCSI,
		Libvirt: node.LibvirtConfig{Options: []libvirt.Option{
			libvirt.WithInitiatorFile(""), libvirt.WithStateDir(t.TempDir()),
		}},
		Reconcile: node.ReconcileConfig{Disabled: true},
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	n, err := node.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("node.Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), libvirttest.CleanupTimeout)
		defer cancel()
		if err := n.Close(ctx); err != nil {
			t.Errorf("node.Close: %v", err)
		}
	})
	_, err = n.Libvirt().Ping(ctx)
	testenv.Need(t, "libvirtd at "+libvirt.DefaultURI, err)
	reg := prometheus.NewRegistry()
	api, err := openstack.New(openstack.Config{
		Compute: n.Compute(), Volumes: n.Volumes(), Store: n.Store(), Auth: auth,
		Metrics: openstack.NewMetrics(reg), DefaultVolumeType: "iscsi",
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	return &stack{t: t, n: n, srv: srv, reg: reg}
}

// volumeDir makes a directory QEMU's user can reach, removed when t ends.
func volumeDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "volattach-openstack-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// server defines and starts an OS-less guest (removed when t ends) and
// records it as a server of project.
func (s *stack) server(project string) *compute.Instance {
	s.t.Helper()
	uuid := libvirttest.Guest(s.t, s.n.Libvirt(), true)
	inst, err := s.n.RegisterGuest(testCtx(s.t), uuid)
	if err != nil {
		s.t.Fatalf("RegisterGuest %s: %v", uuid, err)
	}
	s.setInstance(inst.UUID, func(i *compute.Instance) { i.ProjectID = project })
	s.t.Cleanup(func() { s.releaseServer(inst.UUID) })
	return inst
}

// setInstance changes an instance record (the test plays the part of the
// operations volattach does not implement: ownership, shelving).
func (s *stack) setInstance(uuid string, edit func(*compute.Instance)) {
	s.t.Helper()
	for {
		inst := &compute.Instance{UUID: uuid}
		if err := s.n.Store().Get(testCtx(s.t), inst); err != nil {
			s.t.Fatal(err)
		}
		edit(inst)
		_, err := s.n.Store().Commit(testCtx(s.t), volattach.Txn{Puts: []volattach.Record{inst}})
		if err == nil {
			return
		}
		if !errors.Is(err, volattach.ErrConflict) {
			s.t.Fatal(err)
		}
	}
}

// releaseServer detaches every volume still mapped to the server.
func (s *stack) releaseServer(uuid string) {
	ctx, cancel := context.WithTimeout(context.Background(), libvirttest.CleanupTimeout)
	defer cancel()
	atts, err := s.n.Compute().ListAttachments(ctx, uuid)
	if err != nil {
		return
	}
	for _, a := range atts {
		err := s.n.Compute().DetachVolume(ctx, compute.DetachRequest{InstanceUUID: uuid, VolumeID: a.VolumeID, Caller: compute.Caller{Admin: true}})
		if err != nil && !errors.Is(err, compute.ErrVolumeBDMNotFound) {
			s.t.Errorf("cleanup: detach %s from %s: %v", a.VolumeID, uuid, err)
		}
	}
}

// deleteVolumeAtEnd deletes volume id when t ends (after its servers are
// released: cleanups run last-in first-out, so call it before server).
func (s *stack) deleteVolumeAtEnd(id string) {
	s.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), libvirttest.CleanupTimeout)
		defer cancel()
		if err := s.n.Volumes().DeleteVolume(ctx, id); err != nil && !errors.Is(err, volume.ErrVolumeNotFound) {
			s.t.Errorf("cleanup: delete volume %s: %v", id, err)
		}
	})
}

// volume creates a 1 GiB volume of project directly on the volume side.
func (s *stack) volume(project string, multiattach bool) *volume.Volume {
	s.t.Helper()
	v, err := s.n.Volumes().CreateVolume(testCtx(s.t), volume.VolumeSpec{Backend: "iscsi", Size: 1, ProjectID: project, Multiattach: multiattach, AvailabilityZone: node.DefaultAvailabilityZone})
	if err != nil {
		s.t.Fatal(err)
	}
	s.deleteVolumeAtEnd(v.ID)
	return v
}

// guestDisks returns the serials of the volume disks the guest has.
func (s *stack) guestDisks(uuid string) []string {
	s.t.Helper()
	disks, err := s.n.Libvirt().VolumeDisks(testCtx(s.t), uuid)
	if err != nil {
		s.t.Fatal(err)
	}
	var out []string
	for _, d := range disks {
		out = append(out, d.Serial)
	}
	return out
}

// response is one raw HTTP answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

// fault returns the error body's kind, code and message.
func (r response) fault(t testing.TB) (string, int, string) {
	t.Helper()
	var m map[string]struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(r.body, &m); err != nil || len(m) != 1 {
		t.Fatalf("not an error body (%d): %s", r.status, r.body)
	}
	for k, v := range m {
		return k, v.Code, v.Message
	}
	return "", 0, ""
}

// do sends one request; headers alternate names and values.
func (s *stack) do(method, path, token, body string, headers ...string) response {
	s.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(testCtx(s.t), method, s.srv.URL+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("X-Auth-Token", token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: bytes.TrimSpace(data)}
}
