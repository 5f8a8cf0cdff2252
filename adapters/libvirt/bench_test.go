package libvirt_test

import (
	"context"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/socket/dialers"
	"github.com/sirupsen/logrus"

	"github.com/volattach/volattach/adapters/libvirt"
	"github.com/volattach/volattach/adapters/libvirt/libvirttest"
)

// BenchmarkAttachDetachSCSIFile measures one attach and detach of a qcow2
// file disk on the SCSI bus of a running guest, through the adapter
// (lookup, state, definition read, attach; detach by alias waiting for the
// device-removed event, then the persistent definition) and, in the same
// run, the same disk XML attached and detached directly through go-libvirt
// (DomainAttachDeviceFlags and DomainDetachDeviceFlags, live and config,
// libvirt's own minimum). The interleaved sub-benchmark alternates the two
// and reports both and their ratio:
//
//	go test -run '^$' -bench AttachDetachSCSIFile -count 5 ./adapters/libvirt/ | benchstat -
func BenchmarkAttachDetachSCSIFile(b *testing.B) {
	quiet := logrus.New()
	quiet.SetLevel(logrus.WarnLevel)
	a := libvirttest.Adapter(b, libvirt.WithLogger(quiet))
	guest := libvirttest.Guest(b, a, true)
	info := fileVolume(b)
	id := newVolumeID()
	disk := scsi(id, "sdb")
	conf, err := a.DiskXML(info, disk)
	if err != nil {
		b.Fatal(err)
	}
	doc, err := conf.Marshal()
	if err != nil {
		b.Fatal(err)
	}

	direct := golibvirt.NewWithDialer(dialers.NewLocal())
	if err := direct.ConnectToURI(golibvirt.QEMUSystem); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { direct.Disconnect() })
	var uuid golibvirt.UUID
	if _, err := hex.Decode(uuid[:], []byte(strings.ReplaceAll(guest, "-", ""))); err != nil {
		b.Fatal(err)
	}
	dom, err := direct.DomainLookupByUUID(uuid)
	if err != nil {
		b.Fatal(err)
	}
	flags := uint32(golibvirt.DomainDeviceModifyLive | golibvirt.DomainDeviceModifyConfig)
	ctx := context.Background()

	viaAdapter := func(b *testing.B) {
		if err := a.AttachVolume(ctx, guest, info, disk); err != nil {
			b.Fatal(err)
		}
		if err := a.DetachVolume(ctx, guest, info, disk); err != nil {
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

	b.Run("path=adapter", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			viaAdapter(b)
		}
	})
	b.Run("path=golibvirt", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			viaGoLibvirt(b)
		}
	})
	b.Run("path=interleaved", func(b *testing.B) {
		var adapterTime, directTime time.Duration
		for b.Loop() {
			start := time.Now()
			viaAdapter(b)
			mid := time.Now()
			viaGoLibvirt(b)
			adapterTime += mid.Sub(start)
			directTime += time.Since(mid)
		}
		n := float64(b.N)
		b.ReportMetric(float64(adapterTime.Microseconds())/n, "adapter-µs/op")
		b.ReportMetric(float64(directTime.Microseconds())/n, "golibvirt-µs/op")
		b.ReportMetric(float64(adapterTime)/float64(directTime), "adapter/golibvirt")
	})
}
