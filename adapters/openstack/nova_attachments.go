package openstack

import (
	"errors"
	"net/http"
	"strings"

	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/volume"
)

// attachRequest is a validated POST /servers/{id}/os-volume_attachments
// body (nova/api/openstack/compute/schemas/volume_attachments.py create,
// create_v249, create_v279): additional properties refused.
type attachRequest struct {
	VolumeID            string
	Device              string
	Tag                 string
	DeleteOnTermination bool
}

// decodeAttach validates an attach body at microversion v.
func decodeAttach(body object, v Version) (attachRequest, error) {
	var req attachRequest
	if err := body.only("Request body", []string{"volumeAttachment"}); err != nil {
		return req, err
	}
	va, err := body.child("Request body", "volumeAttachment", true)
	if err != nil {
		return req, err
	}
	allowed := []string{"device"}
	if v.AtLeast(novaTag) {
		allowed = append(allowed, "tag")
	}
	if v.AtLeast(novaDeleteOnTerm) {
		allowed = append(allowed, "delete_on_termination")
	}
	if err := va.only("volumeAttachment", []string{"volumeId"}, allowed...); err != nil {
		return req, err
	}
	if req.VolumeID, err = va.uuid("volumeId", false); err != nil {
		return req, err
	}
	if req.Device, err = va.str("device", true, 255); err != nil {
		return req, err
	}
	if req.Device != "" {
		if err := compute.ValidateDevicePath(req.Device); err != nil {
			return req, invalid("device", "'%s' does not match '%s'", req.Device, compute.DevicePathPattern)
		}
	}
	if req.Tag, err = va.str("tag", false, 60); err != nil {
		return req, err
	}
	if strings.ContainsAny(req.Tag, ",/") {
		return req, invalid("tag", "'%s' does not match '^[^,/]*$'", req.Tag)
	}
	if req.DeleteOnTermination, err = va.boolean("delete_on_termination"); err != nil {
		return req, err
	}
	return req, nil
}

// decodeAttachmentUpdate validates a PUT body (schemas update and
// update_v285): volumeId is required; from 2.85 the other fields of the
// attachment may be given, and only delete_on_termination may differ.
func decodeAttachmentUpdate(body object, v Version) (object, error) {
	if err := body.only("Request body", []string{"volumeAttachment"}); err != nil {
		return nil, err
	}
	va, err := body.child("Request body", "volumeAttachment", true)
	if err != nil {
		return nil, err
	}
	var allowed []string
	if v.AtLeast(novaAttachmentUpdate) {
		allowed = []string{"id", "serverId", "device", "tag", "delete_on_termination"}
	}
	if err := va.only("volumeAttachment", []string{"volumeId"}, allowed...); err != nil {
		return nil, err
	}
	if _, err := va.uuid("volumeId", false); err != nil {
		return nil, err
	}
	// The update_v285 schema's types; whether the values may differ from
	// the attachment's is the handler's and compute.API's question.
	if _, err := va.str("id", false, 255); err != nil {
		return nil, err
	}
	if _, err := va.uuid("serverId", false); err != nil {
		return nil, err
	}
	if _, err := va.str("device", true, 255); err != nil {
		return nil, err
	}
	if tag, err := va.str("tag", false, 60); err != nil {
		return nil, err
	} else if strings.ContainsAny(tag, ",/") {
		return nil, invalid("tag", "'%s' does not match '^[^,/]*$'", tag)
	}
	if _, err := va.boolean("delete_on_termination"); err != nil {
		return nil, err
	}
	return va, nil
}

// attachmentView is the volumeAttachment view at microversion v
// (nova/api/openstack/compute/volume_attachments.py
// _translate_attachment_detail_view): tag from 2.70, delete_on_termination
// from 2.79; from 2.89 (not in a create response) attachment_id and
// bdm_uuid replace id.
func attachmentView(a *compute.VolumeAttachment, v Version, create bool) map[string]any {
	out := map[string]any{"device": nullable(a.Device), "serverId": a.ServerID, "volumeId": a.VolumeID}
	if create || !v.AtLeast(novaAttachmentIDs) {
		out["id"] = a.VolumeID
	} else {
		out["attachment_id"] = nullable(a.AttachmentID)
		out["bdm_uuid"] = nullable(a.BDMUUID)
	}
	if v.AtLeast(novaTagShown) {
		out["tag"] = nullable(a.Tag)
	}
	if v.AtLeast(novaDeleteOnTerm) {
		out["delete_on_termination"] = a.DeleteOnTermination
	}
	return out
}

// checkShelvedVersion is upstream's _check_request_version: attach and
// detach on a shelved or shelved_offloaded instance need microversion
// 2.20 (409 below it, as raise_http_conflict_for_instance_invalid_state).
// It is a rule of the API layer upstream too: the compute API has no
// microversion.
func checkShelvedVersion(r *http.Request, inst *compute.Instance, action string) error {
	if (inst.VMState == compute.VMShelved || inst.VMState == compute.VMShelvedOffloaded) && !versionOf(r).AtLeast(novaShelved) {
		return conflict("Cannot '%s' instance %s while it is in vm_state %s", action, inst.UUID, inst.VMState)
	}
	return nil
}

// checkVolumeVisible refuses a volume of another project as if it did not
// exist (upstream Nova asks Cinder with the user's token, which answers
// 404). A volume that does not exist at all is left to the compute API,
// which answers 404 in its own order of checks.
func (s *Server) checkVolumeVisible(r *http.Request, volumeID string) error {
	vol, err := s.cfg.Volumes.GetVolume(r.Context(), volumeID)
	if errors.Is(err, volume.ErrVolumeNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if !identityOf(r).canSee(vol.ProjectID) {
		return notFound("Volume %s could not be found.", volumeID)
	}
	return nil
}

func (s *Server) caller(r *http.Request) compute.Caller {
	return compute.Caller{Admin: identityOf(r).Admin(), RequestID: requestID(r)}
}

// listVolumeAttachments is GET /servers/{id}/os-volume_attachments.
func (s *Server) listVolumeAttachments(w http.ResponseWriter, r *http.Request) error {
	inst, err := s.instance(r, r.PathValue("server"))
	if err != nil {
		return err
	}
	atts, err := s.cfg.Compute.ListAttachments(r.Context(), inst.UUID)
	if err != nil {
		return err
	}
	out := make([]map[string]any, 0, len(atts))
	for _, a := range atts {
		out = append(out, attachmentView(a, versionOf(r), false))
	}
	writeJSON(w, http.StatusOK, map[string]any{"volumeAttachments": out})
	return nil
}

// showVolumeAttachment is GET /servers/{id}/os-volume_attachments/{volume}.
func (s *Server) showVolumeAttachment(w http.ResponseWriter, r *http.Request) error {
	inst, err := s.instance(r, r.PathValue("server"))
	if err != nil {
		return err
	}
	a, err := s.cfg.Compute.ShowAttachment(r.Context(), inst.UUID, r.PathValue("volume"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"volumeAttachment": attachmentView(a, versionOf(r), false)})
	return nil
}

// createVolumeAttachment is POST /servers/{id}/os-volume_attachments: the
// body is validated first (as upstream's schema decorator runs first), then
// the server is looked up, the 2.20 gate applied, and compute.API attaches.
// Up to 2.100 the answer waits for the host and carries the device the guest
// got (200); from 2.101 it is 202 with no body once the attach is queued.
func (s *Server) createVolumeAttachment(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(r, s.cfg.MaxBodyBytes)
	if err != nil {
		return err
	}
	v := versionOf(r)
	req, err := decodeAttach(body, v)
	if err != nil {
		return err
	}
	inst, err := s.instance(r, r.PathValue("server"))
	if err != nil {
		return err
	}
	if err := checkShelvedVersion(r, inst, "attach_volume"); err != nil {
		return err
	}
	if err := s.checkVolumeVisible(r, req.VolumeID); err != nil {
		return err
	}
	async := v.AtLeast(novaAsyncAttach)
	att, err := s.cfg.Compute.AttachVolume(r.Context(), compute.AttachRequest{
		Caller: s.caller(r), InstanceUUID: inst.UUID, VolumeID: req.VolumeID, Device: req.Device,
		Tag: req.Tag, DeleteOnTermination: req.DeleteOnTermination,
		SupportsMultiattach: v.AtLeast(novaMultiattach), Async: async,
	})
	if err != nil {
		return err
	}
	if async {
		w.WriteHeader(http.StatusAccepted)
		return nil
	}
	writeJSON(w, http.StatusOK, map[string]any{"volumeAttachment": attachmentView(att, v, true)})
	return nil
}

// updateVolumeAttachment is PUT /servers/{id}/os-volume_attachments/{volume}
// (nova's volume_attachments.py update). Below 2.85 it is only the
// admin-only volume swap, and from 2.85 a volumeId other than the path's
// is a swap too: volattach does not swap volumes (501, after the body is
// validated, the policy checked and the attachment found). From 2.85 with
// the same volumeId it updates the attachment (_update_volume_regular): id,
// serverId, device and tag may only repeat the attachment's own (400
// otherwise); delete_on_termination changes. 202 with no body.
func (s *Server) updateVolumeAttachment(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(r, s.cfg.MaxBodyBytes)
	if err != nil {
		return err
	}
	v := versionOf(r)
	va, err := decodeAttachmentUpdate(body, v)
	if err != nil {
		return err
	}
	volumeID := r.PathValue("volume")
	newVolume, _ := va.uuid("volumeId", false)
	swap := !v.AtLeast(novaAttachmentUpdate) || newVolume != volumeID
	if swap {
		if err := requireAdmin(r, "os_compute_api:os-volumes-attachments:swap"); err != nil {
			return err
		}
	}
	inst, err := s.instance(r, r.PathValue("server"))
	if err != nil {
		return err
	}
	if swap {
		if _, err := s.cfg.Compute.ShowAttachment(r.Context(), inst.UUID, volumeID); err != nil {
			return err
		}
		return &HTTPError{Status: http.StatusNotImplemented, Message: "Swapping the volume of an attachment is not implemented by volattach."}
	}
	req := compute.UpdateAttachmentRequest{InstanceUUID: inst.UUID, VolumeID: volumeID}
	if id, _ := va.str("id", false, 255); va.has("id") && id != volumeID {
		return &HTTPError{Status: http.StatusBadRequest, Message: "The id property is not mutable"}
	}
	if sid, _ := va.str("serverId", false, 255); va.has("serverId") && sid != inst.UUID {
		return &HTTPError{Status: http.StatusBadRequest, Message: "The serverId property is not mutable"}
	}
	if va.has("device") {
		d, _ := va.str("device", true, 255)
		req.Device = &d
	}
	if va.has("tag") {
		t, _ := va.str("tag", false, 60)
		req.Tag = &t
	}
	if va.has("delete_on_termination") {
		b, _ := va.boolean("delete_on_termination")
		req.DeleteOnTermination = &b
	}
	if _, err := s.cfg.Compute.UpdateAttachment(r.Context(), req); err != nil {
		return err
	}
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// deleteVolumeAttachment is DELETE /servers/{id}/os-volume_attachments/{volume}.
func (s *Server) deleteVolumeAttachment(w http.ResponseWriter, r *http.Request) error {
	inst, err := s.instance(r, r.PathValue("server"))
	if err != nil {
		return err
	}
	if err := checkShelvedVersion(r, inst, "detach_volume"); err != nil {
		return err
	}
	volumeID := r.PathValue("volume")
	if err := s.checkVolumeVisible(r, volumeID); err != nil {
		return err
	}
	err = s.cfg.Compute.DetachVolume(r.Context(), compute.DetachRequest{
		Caller: s.caller(r), InstanceUUID: inst.UUID, VolumeID: volumeID, Async: s.cfg.AsyncDetach,
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusAccepted)
	return nil
}
