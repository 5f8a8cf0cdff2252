package compute_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/volattach/volattach/adapters/etcd/etcdtest"
	"github.com/volattach/volattach/compute"
)

// A detach for an instance whose host's agent is down is refused with
// upstream's ServiceUnavailable text, which does not name the host (it is
// sensitive information upstream), and nothing is written.
func TestDetachOnADownHostDoesNotNameTheHost(t *testing.T) {
	e := newEnv(t)
	i, v := e.instance(), e.volume()
	e.attach(i, v)
	e.hosts.set(testHost, false)
	rev := etcdtest.Revision(t)
	err := e.api.DetachVolume(ctxT(t), compute.DetachRequest{InstanceUUID: i.UUID, VolumeID: v.ID})
	if !errors.Is(err, compute.ErrComputeServiceUnavailable) || compute.HTTPStatus(err) != 409 {
		t.Fatalf("detach on a down host: %v (status %d), want ComputeServiceUnavailable 409", err, compute.HTTPStatus(err))
	}
	if msg := err.Error(); strings.Contains(msg, testHost) || !strings.Contains(msg, "Service is unavailable at this time.") {
		t.Errorf("message %q names the host or is not upstream's", msg)
	}
	if got := etcdtest.Revision(t); got != rev {
		t.Errorf("etcd revision moved from %d to %d", rev, got)
	}
}
