package openstack_test

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/volumeattach"

	"github.com/volattach/volattach/compute"
)

// BenchmarkAttachDetachHTTPvsGo attaches and detaches one volume on a real
// guest, alternately through HTTP (gophercloud, os-volume_attachments,
// noauth) and through compute.API in process, in the same run, and
// reports the p50 and p99 of each and their ratio (the aim: HTTP <= 1.1x).
// Run it with a fixed count, e.g. -benchtime 30x.
func BenchmarkAttachDetachHTTPvsGo(b *testing.B) {
	s := newStack(b, nil)
	v := s.volume("p1", false)
	inst := s.server("p1")
	provider := &gophercloud.ProviderClient{HTTPClient: http.Client{Timeout: time.Minute}}
	provider.SetToken("u1:p1")
	nova := &gophercloud.ServiceClient{ProviderClient: provider, Endpoint: s.srv.URL + "/compute/v2.1/"}
	api := s.n.Compute()
	var viaHTTP, viaGo []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if _, err := volumeattach.Create(testCtx(b), nova, inst.UUID, volumeattach.CreateOpts{VolumeID: v.ID}).Extract(); err != nil {
			b.Fatalf("HTTP attach: %v", err)
		}
		if err := volumeattach.Delete(testCtx(b), nova, inst.UUID, v.ID).ExtractErr(); err != nil {
			b.Fatalf("HTTP detach: %v", err)
		}
		viaHTTP = append(viaHTTP, time.Since(start))

		start = time.Now()
		if _, err := api.AttachVolume(testCtx(b), compute.AttachRequest{InstanceUUID: inst.UUID, VolumeID: v.ID}); err != nil {
			b.Fatalf("Go attach: %v", err)
		}
		if err := api.DetachVolume(testCtx(b), compute.DetachRequest{InstanceUUID: inst.UUID, VolumeID: v.ID}); err != nil {
			b.Fatalf("Go detach: %v", err)
		}
		viaGo = append(viaGo, time.Since(start))
	}
	b.StopTimer()
	hp50, hp99 := percentile(viaHTTP, 50), percentile(viaHTTP, 99)
	gp50, gp99 := percentile(viaGo, 50), percentile(viaGo, 99)
	b.ReportMetric(ms(hp50), "http-p50-ms")
	b.ReportMetric(ms(hp99), "http-p99-ms")
	b.ReportMetric(ms(gp50), "go-p50-ms")
	b.ReportMetric(ms(gp99), "go-p99-ms")
	b.ReportMetric(ms(hp50)/ms(gp50), "p50-ratio")
	b.ReportMetric(ms(hp99)/ms(gp99), "p99-ratio")
}

func percentile(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	if i > 0 {
		i--
	}
	return s[i]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
