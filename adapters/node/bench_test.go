package node_test

import (
	"context"
	"encoding/hex"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket/dialers"
	"github.com/sirupsen/logrus"

	"github.com/volattach/volattach/adapters/node"
	"github.com/volattach/volattach/compute"
)

// BenchmarkAttachDetachSCSI measures one attach and detach of a file
// volume on the SCSI bus of a running guest through the whole stack
// (compute.API's synchronous attach and detach, the host agent over an
// embedded etcd, the volume side, the libvirt adapter) and, in the same
// run, the same disk XML attached and detached directly through go-libvirt
// (DomainAttachDeviceFlags and DomainDetachDeviceFlags, live and config:
// libvirt's own cost). The interleaved sub-benchmark alternates the two
// and reports both means, their ratio (the aim: at most 1.2), the stack's
// overhead as a fraction of libvirt's time, both medians and their ratio:
//
//	go test -run '^$' -bench AttachDetachSCSI -count 5 ./adapters/node/ | benchstat -
func BenchmarkAttachDetachSCSI(b *testing.B) {
	quiet := logrus.New()
	quiet.Out = io.Discard
	s := newStack(b, func(c *node.Config) {
		c.Etcd = node.EtcdConfig{} // embedded, in a temporary directory
		c.ISCSI, c.NBD = nil, nil
		c.Log = quiet
	})
	inst := s.guest(true)
	v := s.volume("file")
	ctx := context.Background()

	// One attach through the stack tells the disk libvirt gets.
	if _, err := s.attach(inst, v, compute.BusSCSI); err != nil {
		b.Fatal(err)
	}
	m := s.mapping(inst, v)
	conf, err := s.n.Libvirt().DiskXML(*m.ConnectionInfo, compute.DiskInfo{
		Serial: v.ID, DeviceName: "sda", Bus: compute.BusSCSI, DeviceType: compute.DeviceTypeDisk,
	})
	if err != nil {
		b.Fatal(err)
	}
	doc, err := conf.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	if err := s.detach(inst, v); err != nil {
		b.Fatal(err)
	}

	direct := golibvirt.NewWithDialer(dialers.NewLocal())
	if err := direct.ConnectToURI(golibvirt.QEMUSystem); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { direct.Disconnect() })
	var uuid golibvirt.UUID
	if _, err := hex.Decode(uuid[:], []byte(strings.ReplaceAll(inst.UUID, "-", ""))); err != nil {
		b.Fatal(err)
	}
	dom, err := direct.DomainLookupByUUID(uuid)
	if err != nil {
		b.Fatal(err)
	}
	flags := uint32(golibvirt.DomainDeviceModifyLive | golibvirt.DomainDeviceModifyConfig)

	viaStack := func(b *testing.B) {
		att, err := s.n.Compute().AttachVolume(ctx, compute.AttachRequest{InstanceUUID: inst.UUID, VolumeID: v.ID, DiskBus: compute.BusSCSI})
		if err != nil {
			b.Fatal(err)
		}
		if att.Device != "/dev/sda" {
			b.Fatalf("attached at %s, want /dev/sda", att.Device)
		}
		if err := s.n.Compute().DetachVolume(ctx, compute.DetachRequest{InstanceUUID: inst.UUID, VolumeID: v.ID}); err != nil {
			b.Fatal(err)
		}
	}
	viaGoLibvirt := func(b *testing.B) {
		if err := direct.DomainAttachDeviceFlags(dom, doc, flags); err != nil {
			b.Fatal(err)
		}
		if err := direct.DomainDetachDeviceFlags(dom, doc, flags); err != nil {
			b.Fatal(err)
		}
	}

	b.Run("path=stack", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			viaStack(b)
		}
	})
	b.Run("path=golibvirt", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			viaGoLibvirt(b)
		}
	})
	b.Run("path=interleaved", func(b *testing.B) {
		var stackTimes, directTimes []time.Duration
		for b.Loop() {
			start := time.Now()
			viaStack(b)
			mid := time.Now()
			viaGoLibvirt(b)
			stackTimes = append(stackTimes, mid.Sub(start))
			directTimes = append(directTimes, time.Since(mid))
		}
		stackTime, directTime := sum(stackTimes), sum(directTimes)
		n := float64(len(stackTimes))
		b.ReportMetric(float64(stackTime.Microseconds())/n/1000, "stack-ms/op")
		b.ReportMetric(float64(directTime.Microseconds())/n/1000, "golibvirt-ms/op")
		b.ReportMetric(float64(stackTime)/float64(directTime), "stack/golibvirt")
		b.ReportMetric(float64(stackTime-directTime)/float64(directTime), "overhead/golibvirt")
		stackP50, directP50 := median(stackTimes), median(directTimes)
		b.ReportMetric(float64(stackP50.Microseconds())/1000, "stack-p50-ms")
		b.ReportMetric(float64(directP50.Microseconds())/1000, "golibvirt-p50-ms")
		b.ReportMetric(float64(stackP50)/float64(directP50), "p50-stack/golibvirt")
	})
}

func sum(ds []time.Duration) time.Duration {
	var t time.Duration
	for _, d := range ds {
		t += d
	}
	return t
}

// median sorts ds and returns its middle sample.
func median(ds []time.Duration) time.Duration {
	slices.Sort(ds)
	return ds[len(ds)/2]
}
