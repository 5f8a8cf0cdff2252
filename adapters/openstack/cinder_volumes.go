package openstack

import (
	"errors"
	"net/http"
	"time"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/volume"
)

// cinderTime is Cinder's timestamp format (no zone, microseconds).
const cinderTime = "2006-01-02T15:04:05.000000"

func cinderTimeOf(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format(cinderTime)
}

// maxVolumeSize bounds a requested size in GiB (upstream's schema limit
// is the int32 range).
const maxVolumeSize = 2147483647

// volumeRecord reads a volume the caller may see: an unknown one and
// another project's are the same 404.
func (s *Server) volumeRecord(r *http.Request, id string) (*volume.Volume, error) {
	vol, err := s.cfg.Volumes.GetVolume(r.Context(), id)
	if errors.Is(err, volume.ErrVolumeNotFound) || (err == nil && !identityOf(r).canSee(vol.ProjectID)) {
		return nil, notFound("Volume %s could not be found.", id)
	}
	return vol, err
}

func (s *Server) volumeLinks(r *http.Request, id string) []link {
	return []link{{Rel: "self", Href: baseURL(r) + VolumePrefix + "/v3/" + r.PathValue("project") + "/volumes/" + id}}
}

// volumeView is a volume as GET /volumes/{id} shows it
// (cinder/api/v2/views/volumes.py detail); attachments lists the attached
// ones, as upstream's volume_attachment list does.
func (s *Server) volumeView(r *http.Request, vol *volume.Volume) (map[string]any, error) {
	atts, err := s.cfg.Volumes.Attachments(r.Context(), vol.ID)
	if err != nil {
		return nil, err
	}
	attached := []map[string]any{}
	for _, a := range atts {
		if a.AttachStatus != volume.AttachAttached {
			continue
		}
		attached = append(attached, map[string]any{
			"id": vol.ID, "attachment_id": a.ID, "volume_id": vol.ID, "server_id": a.InstanceUUID,
			"host_name": nullable(a.AttachedHost), "device": a.Mountpoint, "attached_at": cinderTimeOf(a.AttachTime),
		})
	}
	out := map[string]any{
		"id": vol.ID, "name": nullable(vol.Name), "status": string(vol.Status), "size": vol.Size,
		"availability_zone": vol.AvailabilityZone, "created_at": cinderTimeOf(vol.CreatedAt),
		"updated_at": cinderTimeOf(vol.UpdatedAt), "attachments": attached, "description": nil,
		"volume_type": vol.Backend, "snapshot_id": nil, "source_volid": nil, "metadata": map[string]string{},
		"user_id": "", "bootable": "false", "encrypted": false, "replication_status": nil,
		"consistencygroup_id": nil, "multiattach": vol.Multiattach, "links": s.volumeLinks(r, vol.ID),
		"migration_status": nullable(vol.MigrationStatus),
	}
	if identityOf(r).Admin() {
		out["os-vol-tenant-attr:tenant_id"] = vol.ProjectID
		out["os-vol-host-attr:host"] = vol.Backend
	}
	return out, nil
}

// listVolumes is GET /volumes and /volumes/detail: the caller's project's
// volumes (every project's for an admin asking all_tenants).
func (s *Server) listVolumes(detail bool) handler {
	return func(w http.ResponseWriter, r *http.Request) error {
		id := identityOf(r)
		all := id.Admin() && truthy(r.URL.Query().Get("all_tenants"))
		ids, err := s.cfg.Store.List(r.Context(), volattach.KindVolume, "", "", 0)
		if err != nil {
			return err
		}
		out := []map[string]any{}
		for _, vid := range ids {
			vol, err := s.cfg.Volumes.GetVolume(r.Context(), vid)
			if errors.Is(err, volume.ErrVolumeNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if !all && vol.ProjectID != id.ProjectID {
				continue
			}
			if !detail {
				out = append(out, map[string]any{"id": vol.ID, "name": nullable(vol.Name), "links": s.volumeLinks(r, vol.ID)})
				continue
			}
			v, err := s.volumeView(r, vol)
			if err != nil {
				return err
			}
			out = append(out, v)
		}
		writeJSON(w, http.StatusOK, map[string]any{"volumes": out})
		return nil
	}
}

// showVolume is GET /volumes/{id}.
func (s *Server) showVolume(w http.ResponseWriter, r *http.Request) error {
	vol, err := s.volumeRecord(r, r.PathValue("volume"))
	if err != nil {
		return err
	}
	v, err := s.volumeView(r, vol)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"volume": v})
	return nil
}

// volumeCreateNullOnly are the members of Cinder's volume create body
// that volattach does not implement (snapshots, clones, images, backups,
// groups): accepted when null, as clients send them, refused otherwise.
var volumeCreateNullOnly = []string{"snapshot_id", "source_volid", "source_replica", "imageRef",
	"image_id", "backup_id", "consistencygroup_id", "group_id", "display_description"}

// decodeVolumeCreate validates POST /volumes
// (cinder/api/schemas/volumes.py create): size is required (an integer of
// at least 1), multiattach a boolean, volume_type names the backend.
func decodeVolumeCreate(body object) (volume.VolumeSpec, error) {
	var spec volume.VolumeSpec
	if err := body.only("Request body", []string{"volume"}, "OS-SCH-HNT:scheduler_hints"); err != nil {
		return spec, err
	}
	if !body.isNull("OS-SCH-HNT:scheduler_hints") {
		return spec, badRequest("Scheduler hints are not supported by volattach.")
	}
	v, err := body.child("Request body", "volume", true)
	if err != nil {
		return spec, err
	}
	allowed := append([]string{"name", "display_name", "description", "availability_zone",
		"volume_type", "metadata", "multiattach"}, volumeCreateNullOnly...)
	if err := v.only("volume", []string{"size"}, allowed...); err != nil {
		return spec, err
	}
	for _, k := range volumeCreateNullOnly {
		if !v.isNull(k) {
			return spec, invalid(k, "volattach creates blank volumes only; %s must be null", k)
		}
	}
	size, err := v.integer("size", 1, maxVolumeSize)
	if err != nil {
		return spec, err
	}
	spec.Size = int(size)
	if spec.Name, err = v.str("name", true, 255); err != nil {
		return spec, err
	}
	if spec.Name == "" {
		if spec.Name, err = v.str("display_name", true, 255); err != nil {
			return spec, err
		}
	}
	if _, err = v.str("description", true, 255); err != nil {
		return spec, err
	}
	if spec.AvailabilityZone, err = v.str("availability_zone", true, 255); err != nil {
		return spec, err
	}
	if spec.Backend, err = v.str("volume_type", true, 255); err != nil {
		return spec, err
	}
	if m, err := v.anyMap("metadata"); err != nil {
		return spec, err
	} else if len(m) > 0 {
		return spec, invalid("metadata", "volattach keeps no volume metadata; metadata must be empty")
	}
	if spec.Multiattach, err = v.boolean("multiattach"); err != nil {
		return spec, err
	}
	return spec, nil
}

// createVolume is POST /volumes (202 with the volume, as upstream; here it
// is already available or in error).
func (s *Server) createVolume(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(r, s.cfg.MaxBodyBytes)
	if err != nil {
		return err
	}
	spec, err := decodeVolumeCreate(body)
	if err != nil {
		return err
	}
	if spec.Backend == "" || spec.Backend == "__DEFAULT__" {
		spec.Backend = s.cfg.DefaultVolumeType
	}
	spec.ProjectID = r.PathValue("project")
	vol, err := s.cfg.Volumes.CreateVolume(r.Context(), spec)
	if err != nil {
		return err
	}
	v, err := s.volumeView(r, vol)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"volume": v})
	return nil
}

// deleteVolume is DELETE /volumes/{id} (202).
func (s *Server) deleteVolume(w http.ResponseWriter, r *http.Request) error {
	vol, err := s.volumeRecord(r, r.PathValue("volume"))
	if err != nil {
		return err
	}
	if err := s.cfg.Volumes.DeleteVolume(r.Context(), vol.ID); err != nil {
		return err
	}
	w.WriteHeader(http.StatusAccepted)
	return nil
}
