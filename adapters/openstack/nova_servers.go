package openstack

import (
	"errors"
	"net/http"
	"sort"
	"time"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/compute"
)

// serverStatus is the API status of a vm_state (nova/api/openstack/common.py
// _STATE_MAP, for task_state None).
var serverStatus = map[compute.VMState]string{
	compute.VMActive: "ACTIVE", compute.VMBuilding: "BUILD", compute.VMPaused: "PAUSED",
	compute.VMSuspended: "SUSPENDED", compute.VMStopped: "SHUTOFF", compute.VMRescued: "RESCUE",
	compute.VMResized: "VERIFY_RESIZE", compute.VMSoftDeleted: "SOFT_DELETED",
	compute.VMDeleted: "DELETED", compute.VMError: "ERROR", compute.VMShelved: "SHELVED",
	compute.VMShelvedOffloaded: "SHELVED_OFFLOADED",
}

// instance reads a server the caller may see: an unknown one, and another
// project's, are the same 404 (existence is not leaked).
func (s *Server) instance(r *http.Request, uuid string) (*compute.Instance, error) {
	inst := &compute.Instance{UUID: uuid}
	err := s.cfg.Store.Get(r.Context(), inst)
	if errors.Is(err, volattach.ErrNotFound) || (err == nil && (inst.VMState == compute.VMDeleted || !identityOf(r).canSee(inst.ProjectID))) {
		return nil, notFound("Instance %s could not be found.", uuid)
	}
	if err != nil {
		return nil, err
	}
	return inst, nil
}

func (s *Server) serverLinks(r *http.Request, uuid string) []link {
	return []link{{Rel: "self", Href: baseURL(r) + ComputePrefix + "/v2.1/servers/" + uuid}}
}

// serverView is a server as GET /servers/detail shows it: the fields
// volattach knows, and the empty values of the others clients expect.
func (s *Server) serverView(r *http.Request, inst *compute.Instance) map[string]any {
	volumes := []map[string]any{}
	ids := make([]string, 0, len(inst.BlockDevices))
	for id := range inst.BlockDevices {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		volumes = append(volumes, map[string]any{"id": id, "delete_on_termination": false})
	}
	created := inst.LaunchedAt
	if created.IsZero() {
		created = time.Unix(0, 0)
	}
	return map[string]any{
		"id": inst.UUID, "name": inst.UUID, "status": serverStatus[inst.VMState],
		"tenant_id": inst.ProjectID, "user_id": "", "metadata": map[string]string{},
		"hostId": "", "image": "", "flavor": flavorView(versionOf(r)),
		"created": created.UTC().Format(time.RFC3339), "updated": created.UTC().Format(time.RFC3339),
		"addresses": map[string]any{}, "accessIPv4": "", "accessIPv6": "", "links": s.serverLinks(r, inst.UUID),
		"OS-EXT-STS:vm_state": string(inst.VMState), "OS-EXT-STS:task_state": nullable(string(inst.TaskState)),
		"OS-EXT-STS:power_state": 1, "OS-EXT-AZ:availability_zone": inst.AvailabilityZone,
		"OS-EXT-SRV-ATTR:host": nullable(inst.Host), "locked": inst.Locked,
		"os-extended-volumes:volumes_attached": volumes, "config_drive": "", "key_name": nil,
		"security_groups": []any{}, "progress": 0,
	}
}

// flavorView is the server's flavor: volattach records none, so a
// placeholder in the shape of the microversion (by id up to 2.46, embedded
// from 2.47).
func flavorView(v Version) map[string]any {
	if v.AtLeast(Version{2, 47}) {
		return map[string]any{"original_name": "volattach", "vcpus": 1, "ram": 64, "disk": 0,
			"ephemeral": 0, "swap": 0, "extra_specs": map[string]string{}}
	}
	return map[string]any{"id": "volattach", "links": []link{}}
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// listServers is GET /servers and /servers/detail: the caller's project's
// servers (every project's for an admin asking all_tenants).
func (s *Server) listServers(detail bool) handler {
	return func(w http.ResponseWriter, r *http.Request) error {
		id := identityOf(r)
		all := id.Admin() && truthy(r.URL.Query().Get("all_tenants"))
		ids, err := s.cfg.Store.List(r.Context(), volattach.KindInstance, "", "", 0)
		if err != nil {
			return err
		}
		out := []map[string]any{}
		for _, uuid := range ids {
			inst := &compute.Instance{UUID: uuid}
			if err := s.cfg.Store.Get(r.Context(), inst); err != nil {
				if errors.Is(err, volattach.ErrNotFound) {
					continue
				}
				return err
			}
			if inst.VMState == compute.VMDeleted || (!all && inst.ProjectID != id.ProjectID) {
				continue
			}
			if detail {
				out = append(out, s.serverView(r, inst))
			} else {
				out = append(out, map[string]any{"id": inst.UUID, "name": inst.UUID, "links": s.serverLinks(r, inst.UUID)})
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"servers": out})
		return nil
	}
}

// showServer is GET /servers/{id}.
func (s *Server) showServer(w http.ResponseWriter, r *http.Request) error {
	inst, err := s.instance(r, r.PathValue("server"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"server": s.serverView(r, inst)})
	return nil
}

func truthy(s string) bool {
	switch s {
	case "1", "true", "True", "yes", "on":
		return true
	}
	return false
}
