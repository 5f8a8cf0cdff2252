package node_test

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/volattach/volattach/adapters/etcd"
	"github.com/volattach/volattach/adapters/etcd/etcdtest"
	"github.com/volattach/volattach/adapters/libvirt"
	"github.com/volattach/volattach/adapters/libvirt/libvirttest"
	"github.com/volattach/volattach/adapters/node"
	"github.com/volattach/volattach/adapters/storage"
	"github.com/volattach/volattach/adapters/storage/nfs/nfstest"
	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/volume"
)

// TestNFSAttachDetach attaches an NFS volume to a running guest through the
// whole stack: connection_info is upstream's nfs one, QEMU's own NFS client
// opens the file through the export (no mount on the host), what the guest
// writes is in the file, and the detach leaves nothing.
func TestNFSAttachDetach(t *testing.T) {
	t.Parallel()
	cfg := nfstest.Config(t)
	s := newStack(t, func(c *node.Config) { c.NFS = &cfg })
	inst := s.guest(true)
	v := s.volume("nfs")

	if _, err := s.attach(inst, v, compute.BusSCSI); err != nil {
		t.Fatalf("attach: %v", err)
	}
	d := s.requireDisk(inst, v, true, "sda", compute.BusSCSI)
	s.requireDisk(inst, v, false, "sda", compute.BusSCSI)
	if d.Source == nil || d.Source.Network == nil || d.Source.Network.Protocol != "nfs" {
		t.Fatalf("disk source %+v, want nfs", d.Source)
	}
	m := s.mapping(inst, v)
	if m == nil || m.ConnectionInfo == nil || m.ConnectionInfo.Data[volume.DataExport] != s.n.NFSBackend().Share() {
		t.Fatalf("mapping %+v; want nfs connection_info naming %s", m, s.n.NFSBackend().Share())
	}
	guestQemuIO(t, inst.UUID, v.ID, "write -P 0x4e 0 128k")
	path, _ := s.n.NFSBackend().Path(v.ID)
	hostQemuIO(t, []string{"-f", "raw", path}, "read -P 0x4e 0 128k")

	if err := s.detach(inst, v); err != nil {
		t.Fatalf("detach: %v", err)
	}
	s.requireReleased(inst, v)
}

// TestNFSExportThatDoesNotExistRefusesToStart: a node whose NFS export path
// the server does not serve does not start (ErrExportNotFound) and writes
// nothing to etcd.
func TestNFSExportThatDoesNotExistRefusesToStart(t *testing.T) {
	t.Parallel()
	libvirttest.Shared(t)
	cfg := nfstest.Config(t)
	cfg.ExportPath = "/no/such/export"
	prefix := etcdtest.Prefix(t)
	ctx := testCtx(t)
	n, err := node.Start(ctx, node.Config{
		Host: "node-test-" + randomHex(4),
		Etcd: node.EtcdConfig{
			Client: &etcd.ClientConfig{Endpoints: etcdtest.Endpoints(t), DialTimeout: etcdtest.StartTimeout},
			Prefix: prefix,
		},
		NFS: &cfg,
		Libvirt: node.LibvirtConfig{Options: []libvirt.Option{
			libvirt.WithInitiatorFile(""), libvirt.WithStateDir(filepath.Join(t.TempDir(), "lv")),
		}},
	})
	if err == nil {
		n.Close(ctx)
		t.Fatal("node started")
	}
	if !errors.Is(err, storage.ErrExportNotFound) {
		t.Fatalf("Start = %v, want ErrExportNotFound", err)
	}
	requireNothingUnder(t, prefix)
}
