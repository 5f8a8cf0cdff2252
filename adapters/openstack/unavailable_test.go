package openstack

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/volattach/volattach"
)

// A store that cannot decide (no etcd leader, unreachable) is a 503 with
// upstream's serviceUnavailable body and a message that says retry, naming
// nothing of the store; it was a 500 "Unexpected API Error" before.
func TestStoreUnavailableIs503(t *testing.T) {
	cause := fmt.Errorf("etcd: get instances/x: %w: etcdserver: no leader (endpoint 10.213.0.2:2379)", volattach.ErrUnavailable)
	rec := httptest.NewRecorder()
	writeError(rec, httptest.NewRequest(http.MethodGet, "/v2.1/servers/x/os-volume_attachments", nil), cause)
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", rec.Code)
	}
	var body map[string]fault
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("body %q: %v", rec.Body, err)
	}
	f, ok := body["serviceUnavailable"]
	if !ok || f.Code != http.StatusServiceUnavailable || f.Message != unavailableMessage {
		t.Fatalf("body %q", rec.Body)
	}
	if strings.Contains(rec.Body.String(), "10.213") || strings.Contains(rec.Body.String(), "etcd") {
		t.Fatalf("the 503 names the store: %q", rec.Body)
	}
}
