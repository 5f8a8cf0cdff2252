package node_test

import (
	"context"
	"encoding/hex"
	"io"
	"strings"
	"testing"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket/dialers"
	"github.com/sirupsen/logrus"

	"github.com/volattach/volattach/adapters/node"
	"github.com/volattach/volattach/adapters/storage/nfs/nfstest"
	"github.com/volattach/volattach/adapters/storage/rbd/rbdtest"
	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/volume"
)

// BenchmarkAttachDetachPerBackend is BenchmarkAttachDetachSCSI's
// interleaved comparison for each backend whose disk go-libvirt can attach
// again after the stack's detach (file, rbd, nfs: nothing per volume is
// exported, so the detach removes nothing the direct path needs; the iSCSI
// and NBD exports are removed by the stack's detach): one attach and
// detach through the whole stack, then the same disk XML through
// go-libvirt alone, alternated in one run; it reports both times and their
// ratio per backend:
//
//	go test -run '^$' -bench AttachDetachPerBackend -count 3 ./adapters/node/
func BenchmarkAttachDetachPerBackend(b *testing.B) {
	for _, backend := range []string{"file", "rbd", "nfs"} {
		b.Run("backend="+backend, func(b *testing.B) {
			quiet := logrus.New()
			quiet.Out = io.Discard
			rcfg := rbdtest.Config(b)
			ncfg := nfstest.Config(b)
			s := newStack(b, func(c *node.Config) {
				c.Etcd = node.EtcdConfig{}
				c.ISCSI, c.NBD = nil, nil
				c.RBD, c.NFS = &rcfg, &ncfg
				c.Log = quiet
			})
			b.Cleanup(func() { s.n.Libvirt().RemoveCephSecret(context.Background()) })
			inst := s.guest(true)
			v := s.volume(backend)
			benchInterleaved(b, s, inst.UUID, v.ID)
		})
	}
}

// benchInterleaved alternates an attach and detach of volume id through
// the stack with the same disk through go-libvirt, and reports both.
func benchInterleaved(b *testing.B, s *stack, instUUID, id string) {
	ctx := context.Background()
	if _, err := s.n.Compute().AttachVolume(ctx, compute.AttachRequest{InstanceUUID: instUUID, VolumeID: id, DiskBus: compute.BusSCSI}); err != nil {
		b.Fatal(err)
	}
	m := s.mapping(&compute.Instance{UUID: instUUID}, s.volumeRecord(id))
	conf, err := s.n.Libvirt().DiskXML(*m.ConnectionInfo, compute.DiskInfo{Serial: id, DeviceName: "sda", Bus: compute.BusSCSI, DeviceType: compute.DeviceTypeDisk})
	if err != nil {
		b.Fatal(err)
	}
	doc, err := conf.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	if err := s.n.Compute().DetachVolume(ctx, compute.DetachRequest{InstanceUUID: instUUID, VolumeID: id}); err != nil {
		b.Fatal(err)
	}
	direct := golibvirt.NewWithDialer(dialers.NewLocal())
	if err := direct.ConnectToURI(golibvirt.QEMUSystem); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { direct.Disconnect() })
	var uuid golibvirt.UUID
	if _, err := hex.Decode(uuid[:], []byte(strings.ReplaceAll(instUUID, "-", ""))); err != nil {
		b.Fatal(err)
	}
	dom, err := direct.DomainLookupByUUID(uuid)
	if err != nil {
		b.Fatal(err)
	}
	flags := uint32(golibvirt.DomainDeviceModifyLive | golibvirt.DomainDeviceModifyConfig)
	var stackTime, directTime time.Duration
	for b.Loop() {
		start := time.Now()
		if _, err := s.n.Compute().AttachVolume(ctx, compute.AttachRequest{InstanceUUID: instUUID, VolumeID: id, DiskBus: compute.BusSCSI}); err != nil {
			b.Fatal(err)
		}
		if err := s.n.Compute().DetachVolume(ctx, compute.DetachRequest{InstanceUUID: instUUID, VolumeID: id}); err != nil {
			b.Fatal(err)
		}
		mid := time.Now()
		if err := direct.DomainAttachDeviceFlags(dom, doc, flags); err != nil {
			b.Fatal(err)
		}
		if err := direct.DomainDetachDeviceFlags(dom, doc, flags); err != nil {
			b.Fatal(err)
		}
		stackTime += mid.Sub(start)
		directTime += time.Since(mid)
	}
	n := float64(b.N)
	b.ReportMetric(float64(stackTime.Microseconds())/n/1000, "stack-ms/op")
	b.ReportMetric(float64(directTime.Microseconds())/n/1000, "golibvirt-ms/op")
	b.ReportMetric(float64(stackTime)/float64(directTime), "stack/golibvirt")
}

// volumeRecord reads volume id.
func (s *stack) volumeRecord(id string) *volume.Volume {
	s.t.Helper()
	v, err := s.n.Volumes().GetVolume(testCtx(s.t), id)
	if err != nil {
		s.t.Fatal(err)
	}
	return v
}
