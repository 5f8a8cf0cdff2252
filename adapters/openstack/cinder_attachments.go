package openstack

import (
	"errors"
	"net/http"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/volume"
)

// needVersion refuses a route below the microversion that introduced it
// (upstream answers 404 for a method not in the requested version).
func needVersion(r *http.Request, v Version) error {
	if !versionOf(r).AtLeast(v) {
		return notFound("The resource could not be found.")
	}
	return nil
}

// attachment reads an attachment whose volume the caller may see: an
// unknown one and another project's are the same 404.
func (s *Server) attachment(r *http.Request, id string) (*volume.Attachment, *volume.Volume, error) {
	a, err := s.cfg.Volumes.GetAttachment(r.Context(), id)
	if errors.Is(err, volume.ErrNotFound) {
		return nil, nil, notFound("Volume attachment could not be found with filter: attachment_id = %s.", id)
	}
	if err != nil {
		return nil, nil, err
	}
	vol, err := s.cfg.Volumes.GetVolume(r.Context(), a.VolumeID)
	if errors.Is(err, volume.ErrVolumeNotFound) || (err == nil && !identityOf(r).canSee(vol.ProjectID)) {
		return nil, nil, notFound("Volume attachment could not be found with filter: attachment_id = %s.", id)
	}
	if err != nil {
		return nil, nil, err
	}
	return a, vol, nil
}

// attachmentDetail is cinder/api/v3/views/attachments.py _detail_view;
// the summary view has only id, status, instance and volume_id.
func attachmentDetail(a *volume.Attachment, detail bool) map[string]any {
	out := map[string]any{"id": a.ID, "status": string(a.AttachStatus), "instance": nullable(a.InstanceUUID), "volume_id": a.VolumeID}
	if detail {
		out["attached_at"] = cinderTimeOf(a.AttachTime)
		out["detached_at"] = cinderTimeOf(a.DetachTime)
		out["attach_mode"] = nullable(a.AttachMode)
		var ci any
		if a.ConnectionInfo != nil {
			ci = connectionInfoView(a)
		}
		out["connection_info"] = ci
	}
	return out
}

// connectionInfoView is an attachment's connection_info as upstream's
// attachment view shows it: the driver data with the driver type and the
// attachment id beside it.
func connectionInfoView(a *volume.Attachment) map[string]any {
	ci := map[string]any{}
	for k, v := range a.ConnectionInfo.Data {
		ci[k] = v
	}
	ci["driver_volume_type"] = a.ConnectionInfo.DriverVolumeType
	ci["attachment_id"] = a.ID
	if a.ConnectionInfo.Serial != "" {
		ci["serial"] = a.ConnectionInfo.Serial
	}
	return ci
}

// decodeAttachmentCreate validates POST /attachments
// (cinder/api/schemas/attachments.py create): volume_uuid required, an
// instance_uuid, a connector, and mode from 3.54.
func decodeAttachmentCreate(body object, v Version) (volumeID, instance string, conn *volume.Connector, mode string, err error) {
	if err = body.only("Request body", []string{"attachment"}); err != nil {
		return
	}
	a, err := body.child("Request body", "attachment", true)
	if err != nil {
		return
	}
	allowed := []string{"instance_uuid", "connector"}
	if v.AtLeast(cinderAttachMode) {
		allowed = append(allowed, "mode")
	}
	if err = a.only("attachment", []string{"volume_uuid"}, allowed...); err != nil {
		return
	}
	if volumeID, err = a.uuid("volume_uuid", false); err != nil {
		return
	}
	if instance, err = a.uuid("instance_uuid", true); err != nil {
		return
	}
	if conn, err = a.connector("connector", false); err != nil {
		return
	}
	mode, err = a.str("mode", true, 2)
	return
}

// createAttachment is POST /attachments (3.27).
func (s *Server) createAttachment(w http.ResponseWriter, r *http.Request) error {
	if err := needVersion(r, cinderAttachments); err != nil {
		return err
	}
	body, err := readBody(r, s.cfg.MaxBodyBytes)
	if err != nil {
		return err
	}
	volumeID, instance, conn, mode, err := decodeAttachmentCreate(body, versionOf(r))
	if err != nil {
		return err
	}
	vol, err := s.volumeRecord(r, volumeID)
	if err != nil {
		return err
	}
	if vol.Multiattach && !versionOf(r).AtLeast(cinderMultiattach) {
		// cinder/api/v3/attachments.py create: a multiattach volume needs 3.50.
		return badRequest("Multiattach volumes need microversion %s or later.", cinderMultiattach)
	}
	a, err := s.cfg.Volumes.AttachmentCreate(r.Context(), vol.ID, instance, conn, mode)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"attachment": attachmentDetail(a, true)})
	return nil
}

// listAttachments is GET /attachments and /attachments/detail (3.27): the
// attachments of the caller's project's volumes, filtered by volume_id or
// instance_id when asked.
func (s *Server) listAttachments(detail bool) handler {
	return func(w http.ResponseWriter, r *http.Request) error {
		if err := needVersion(r, cinderAttachments); err != nil {
			return err
		}
		id := identityOf(r)
		q := r.URL.Query()
		all := id.Admin() && truthy(q.Get("all_tenants"))
		ids, err := s.cfg.Store.List(r.Context(), volattach.KindVolume, "", "", 0)
		if err != nil {
			return err
		}
		out := []map[string]any{}
		for _, vid := range ids {
			if f := q.Get("volume_id"); f != "" && f != vid {
				continue
			}
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
			atts, err := s.cfg.Volumes.Attachments(r.Context(), vid)
			if err != nil {
				return err
			}
			for _, a := range atts {
				if f := q.Get("instance_id"); f != "" && f != a.InstanceUUID {
					continue
				}
				if f := q.Get("status"); f != "" && f != string(a.AttachStatus) {
					continue
				}
				out = append(out, attachmentDetail(a, detail))
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"attachments": out})
		return nil
	}
}

// showAttachment is GET /attachments/{id} (3.27).
func (s *Server) showAttachment(w http.ResponseWriter, r *http.Request) error {
	if err := needVersion(r, cinderAttachments); err != nil {
		return err
	}
	a, _, err := s.attachment(r, r.PathValue("attachment"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"attachment": attachmentDetail(a, true)})
	return nil
}

// updateAttachment is PUT /attachments/{id} (3.27): the connector
// initialises the connection.
func (s *Server) updateAttachment(w http.ResponseWriter, r *http.Request) error {
	if err := needVersion(r, cinderAttachments); err != nil {
		return err
	}
	body, err := readBody(r, s.cfg.MaxBodyBytes)
	if err != nil {
		return err
	}
	if err := body.only("Request body", []string{"attachment"}); err != nil {
		return err
	}
	a, err := body.child("Request body", "attachment", true)
	if err != nil {
		return err
	}
	if err := a.only("attachment", []string{"connector"}); err != nil {
		return err
	}
	conn, err := a.connector("connector", true)
	if err != nil {
		return err
	}
	att, _, err := s.attachment(r, r.PathValue("attachment"))
	if err != nil {
		return err
	}
	updated, err := s.cfg.Volumes.AttachmentUpdate(r.Context(), att.ID, *conn)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"attachment": attachmentDetail(updated, true)})
	return nil
}

// attachmentAction is POST /attachments/{id}/action; os-complete (3.44) is
// the one action.
func (s *Server) attachmentAction(w http.ResponseWriter, r *http.Request) error {
	if err := needVersion(r, cinderComplete); err != nil {
		return err
	}
	body, err := readBody(r, s.cfg.MaxBodyBytes)
	if err != nil {
		return err
	}
	name, _, err := body.action()
	if err != nil {
		return err
	}
	if name != "os-complete" {
		return badRequest("There is no such action: %s", name)
	}
	if !body.isNull(name) {
		o, err := body.child("Request body", name, false)
		if err != nil {
			return err
		}
		if err := o.only(name, nil); err != nil {
			return err
		}
	}
	att, _, err := s.attachment(r, r.PathValue("attachment"))
	if err != nil {
		return err
	}
	if err := s.cfg.Volumes.AttachmentComplete(r.Context(), att.ID); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// deleteAttachment is DELETE /attachments/{id} (3.27); it answers with
// the volume's remaining attachments, as upstream.
func (s *Server) deleteAttachment(w http.ResponseWriter, r *http.Request) error {
	if err := needVersion(r, cinderAttachments); err != nil {
		return err
	}
	att, vol, err := s.attachment(r, r.PathValue("attachment"))
	if err != nil {
		return err
	}
	if err := s.cfg.Volumes.AttachmentDelete(r.Context(), att.ID); err != nil {
		return err
	}
	rest, err := s.cfg.Volumes.Attachments(r.Context(), vol.ID)
	if err != nil {
		return err
	}
	out := []map[string]any{}
	for _, a := range rest {
		out = append(out, attachmentDetail(a, false))
	}
	writeJSON(w, http.StatusOK, map[string]any{"attachments": out})
	return nil
}
