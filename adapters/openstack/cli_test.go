package openstack_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/volattach/volattach/adapters/testenv"
)

// cliTimeout bounds one openstack command (each takes seconds: Python
// start-up, a Keystone login, version discovery).
const cliTimeout = 2 * time.Minute

// cli runs the openstack command-line client as user of project against
// the real Keystone and the test region's endpoints, and returns its
// standard output; a failure fails t with its standard error.
func cli(t *testing.T, k keystoneEnv, user, project string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "openstack", args...)
	cmd.Env = append(os.Environ(),
		"OS_AUTH_URL="+k.url, "OS_IDENTITY_API_VERSION=3", "OS_USERNAME="+user,
		"OS_PASSWORD="+k.pass[user], "OS_PROJECT_NAME="+project,
		"OS_USER_DOMAIN_NAME=Default", "OS_PROJECT_DOMAIN_NAME=Default",
		"OS_REGION_NAME="+testRegion, "OS_INTERFACE=public")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("openstack %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// The openstack command-line client (Debian's python3-openstackclient)
// drives the same flow: volume create, server list, server add volume (the
// guest gets the disk), the attachments list, volume show, server remove
// volume (the disk leaves), volume delete.
func TestOpenstackCLI(t *testing.T) {
	testenv.NeedCommand(t, "openstack")
	k := needKeystone(t)
	s := newKeystoneStack(t, k)
	_, project := k.login(t, "demo", "demo")
	inst := s.server(project)

	var vol struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	if err := json.Unmarshal([]byte(cli(t, k, "demo", "demo", "volume", "create", "--size", "1", "-f", "json", "cli-"+randomHex(3))), &vol); err != nil {
		t.Fatal(err)
	}
	s.deleteVolumeAtEnd(vol.ID)
	if vol.Status != "available" {
		t.Fatalf("volume create: status %q", vol.Status)
	}
	if out := cli(t, k, "demo", "demo", "server", "list", "--no-name-lookup", "-f", "value", "-c", "ID"); strings.TrimSpace(out) != inst.UUID {
		t.Fatalf("server list: %q, want %s", out, inst.UUID)
	}

	cli(t, k, "demo", "demo", "server", "add", "volume", inst.UUID, vol.ID)
	wantDisks(t, s, inst.UUID, vol.ID)
	out := cli(t, k, "demo", "demo", "--os-volume-api-version", "3.27", "volume", "attachment", "list", "-f", "json")
	var atts []map[string]any
	if err := json.Unmarshal([]byte(out), &atts); err != nil || len(atts) != 1 || atts[0]["Volume ID"] != vol.ID {
		t.Fatalf("volume attachment list: %s (%v)", out, err)
	}
	if st := strings.TrimSpace(cli(t, k, "demo", "demo", "volume", "show", "-f", "value", "-c", "status", vol.ID)); st != "in-use" {
		t.Fatalf("volume show after attach: %q", st)
	}

	cli(t, k, "demo", "demo", "server", "remove", "volume", inst.UUID, vol.ID)
	wantDisks(t, s, inst.UUID)
	cli(t, k, "demo", "demo", "volume", "delete", vol.ID)
	if out := cli(t, k, "demo", "demo", "volume", "list", "-f", "value", "-c", "ID"); strings.Contains(out, vol.ID) {
		t.Fatalf("volume list after delete: %q", out)
	}
}
