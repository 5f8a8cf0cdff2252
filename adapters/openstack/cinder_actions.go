package openstack

import (
	"encoding/json"
	"net/http"

	"github.com/volattach/volattach/volume"
)

// volumeAction is POST /volumes/{id}/action: exactly one action, its body
// validated (unknown members refused) before the volume is touched. Each
// action is one call of volume.Service; the admin-only ones pass the
// caller, and the volume side refuses a non-admin (403).
func (s *Server) volumeAction(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(r, s.cfg.MaxBodyBytes)
	if err != nil {
		return err
	}
	name, raw, err := body.action()
	if err != nil {
		return err
	}
	act, ok := volumeActions[name]
	if !ok {
		return badRequest("There is no such action: %s", name)
	}
	args, err := act.decode(raw, name)
	if err != nil {
		return err
	}
	vol, err := s.volumeRecord(r, r.PathValue("volume"))
	if err != nil {
		return err
	}
	return act.run(s, w, r, vol, args)
}

// volumeActionDef is one volume action: its body schema and its call.
type volumeActionDef struct {
	// required and allowed are the action object's members; nullBody
	// says the action takes null (or an empty object).
	required, allowed []string
	nullBody          bool
	run               func(s *Server, w http.ResponseWriter, r *http.Request, vol *volume.Volume, args object) error
}

func (d volumeActionDef) decode(raw json.RawMessage, name string) (object, error) {
	wrapper := object{name: raw}
	if d.nullBody {
		if wrapper.isNull(name) {
			return nil, nil
		}
		o, err := wrapper.child("Request body", name, false)
		if err != nil {
			return nil, err
		}
		return o, o.only(name, nil)
	}
	o, err := wrapper.child("Request body", name, true)
	if err != nil {
		return nil, err
	}
	return o, o.only(name, d.required, d.allowed...)
}

func accepted(w http.ResponseWriter) error {
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// volumeActions are the volume actions of cinder/api/contrib/volume_actions.py
// and admin_actions.py that the volume side implements.
var volumeActions = map[string]volumeActionDef{
	"os-reserve": {nullBody: true, run: func(s *Server, w http.ResponseWriter, r *http.Request, vol *volume.Volume, _ object) error {
		if err := s.cfg.Volumes.Reserve(r.Context(), vol.ID); err != nil {
			return err
		}
		return accepted(w)
	}},
	"os-unreserve": {nullBody: true, run: func(s *Server, w http.ResponseWriter, r *http.Request, vol *volume.Volume, _ object) error {
		if err := s.cfg.Volumes.Unreserve(r.Context(), vol.ID); err != nil {
			return err
		}
		return accepted(w)
	}},
	"os-begin_detaching": {nullBody: true, run: func(s *Server, w http.ResponseWriter, r *http.Request, vol *volume.Volume, _ object) error {
		if err := s.cfg.Volumes.BeginDetaching(r.Context(), vol.ID); err != nil {
			return err
		}
		return accepted(w)
	}},
	"os-roll_detaching": {nullBody: true, run: func(s *Server, w http.ResponseWriter, r *http.Request, vol *volume.Volume, _ object) error {
		if err := s.cfg.Volumes.RollDetaching(r.Context(), vol.ID); err != nil {
			return err
		}
		return accepted(w)
	}},
	"os-initialize_connection": {required: []string{"connector"}, run: func(s *Server, w http.ResponseWriter, r *http.Request, vol *volume.Volume, args object) error {
		c, err := args.connector("connector", true)
		if err != nil {
			return err
		}
		info, err := s.cfg.Volumes.InitializeConnection(r.Context(), vol.ID, *c)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]any{"connection_info": info})
		return nil
	}},
	"os-terminate_connection": {required: []string{"connector"}, run: func(s *Server, w http.ResponseWriter, r *http.Request, vol *volume.Volume, args object) error {
		c, err := args.connector("connector", true)
		if err != nil {
			return err
		}
		if err := s.cfg.Volumes.TerminateConnection(r.Context(), vol.ID, *c); err != nil {
			return err
		}
		return accepted(w)
	}},
	"os-attach": {allowed: []string{"instance_uuid", "host_name", "mountpoint", "mode"}, run: func(s *Server, w http.ResponseWriter, r *http.Request, vol *volume.Volume, args object) error {
		var vals [4]string
		for i, k := range []string{"instance_uuid", "host_name", "mountpoint", "mode"} {
			v, err := args.str(k, true, 255)
			if err != nil {
				return err
			}
			vals[i] = v
		}
		if _, err := s.cfg.Volumes.Attach(r.Context(), vol.ID, vals[0], vals[1], vals[2], vals[3]); err != nil {
			return err
		}
		return accepted(w)
	}},
	"os-detach": {nullBody: false, allowed: []string{"attachment_id"}, run: func(s *Server, w http.ResponseWriter, r *http.Request, vol *volume.Volume, args object) error {
		id, err := args.uuid("attachment_id", true)
		if err != nil {
			return err
		}
		if err := s.cfg.Volumes.Detach(r.Context(), vol.ID, id); err != nil {
			return err
		}
		return accepted(w)
	}},
	"os-force_detach": {allowed: []string{"attachment_id", "connector"}, run: func(s *Server, w http.ResponseWriter, r *http.Request, vol *volume.Volume, args object) error {
		id, err := args.uuid("attachment_id", true)
		if err != nil {
			return err
		}
		c, err := args.connector("connector", false)
		if err != nil {
			return err
		}
		if err := s.cfg.Volumes.ForceDetach(r.Context(), identityOf(r).volumeCaller(), vol.ID, id, c); err != nil {
			return err
		}
		return accepted(w)
	}},
	"os-reset_status": {allowed: []string{"status", "attach_status", "migration_status"}, run: func(s *Server, w http.ResponseWriter, r *http.Request, vol *volume.Volume, args object) error {
		var req volume.ResetRequest
		st, err := args.str("status", true, 255)
		if err != nil {
			return err
		}
		as, err := args.str("attach_status", true, 255)
		if err != nil {
			return err
		}
		req.Status, req.AttachStatus = volume.Status(st), volume.AttachStatus(as)
		if args.has("migration_status") {
			ms, err := args.str("migration_status", true, 255)
			if err != nil {
				return err
			}
			req.MigrationStatus = &ms
		}
		if err := s.cfg.Volumes.ResetStatus(r.Context(), identityOf(r).volumeCaller(), vol.ID, req); err != nil {
			return err
		}
		return accepted(w)
	}},
}
