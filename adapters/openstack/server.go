package openstack

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/volattach/volattach"
	"github.com/volattach/volattach/compute"
	"github.com/volattach/volattach/volume"
)

// Path prefixes of the two APIs on one listener, as devstack lays them out
// (the catalog's endpoints: <base>/compute/v2.1 and
// <base>/volume/v3/$(project_id)s).
const (
	ComputePrefix = "/compute"
	VolumePrefix  = "/volume"
)

// Config configures a Server.
type Config struct {
	// Compute, Volumes and Store are required. Store is read only, to
	// list servers and volumes.
	Compute *compute.API
	Volumes *volume.Service
	Store   volattach.Store
	// Auth authenticates X-Auth-Token; default NoAuth.
	Auth Authenticator
	// AuthURL is the identity service named in a 401's WWW-Authenticate.
	AuthURL string
	// Log receives one entry per request (with its request id) and every
	// failure; nil discards them.
	Log logrus.FieldLogger
	// Metrics, when set, counts requests by route and status.
	Metrics *Metrics
	// MaxBodyBytes is the largest request body; default DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// DefaultVolumeType is the backend a volume created without a
	// volume_type goes to; empty: the volume side's only backend.
	DefaultVolumeType string
	// AsyncDetach answers DELETE os-volume_attachments once the detach is
	// queued, as upstream does; the default waits for the host, so the
	// 202 means the disk has left the guest.
	AsyncDetach bool
}

// Server is the HTTP handler of both APIs.
type Server struct {
	cfg Config
	mux *http.ServeMux
}

// ErrNotConfigured is returned by New without a compute API, a volume
// side or a store.
var ErrNotConfigured = errors.New("openstack: server needs a compute API, a volume service and a store")

// New returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Compute == nil || cfg.Volumes == nil || cfg.Store == nil {
		return nil, ErrNotConfigured
	}
	if cfg.Auth == nil {
		cfg.Auth = NoAuth{}
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	cfg.Log = volattach.LoggerOrDiscard(cfg.Log)
	s := &Server{cfg: cfg, mux: http.NewServeMux()}
	s.routes()
	return s, nil
}

// ServeHTTP serves one request: a request id, a log entry and metrics for
// every request; then the route's handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	reqID := "req-" + volume.NewUUID()
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	sw.Header().Set("X-Openstack-Request-Id", reqID)
	if strings.HasPrefix(r.URL.Path, ComputePrefix+"/") {
		sw.Header().Set("X-Compute-Request-Id", reqID)
	}
	entry := s.cfg.Log.WithFields(logrus.Fields{"request_id": reqID, "method": r.Method, "path": r.URL.Path})
	if g := r.Header.Get("X-Openstack-Request-Id"); g != "" && len(g) <= 64 {
		entry = entry.WithField("global_request_id", g)
	}
	ctx := volume.WithRequestID(r.Context(), reqID)
	ctx = context.WithValue(ctx, logKey{}, &requestLog{entry: entry, id: reqID})
	r = r.WithContext(ctx)
	s.mux.ServeHTTP(sw, r)
	route := r.Pattern
	if route == "" {
		route = "unmatched"
	}
	d := time.Since(start)
	if s.cfg.Metrics != nil {
		s.cfg.Metrics.observeRequest(route, r.Method, sw.status, d)
	}
	rl := ctx.Value(logKey{}).(*requestLog)
	rl.entry.WithFields(logrus.Fields{"status": sw.status, "route": route, "duration_ms": d.Milliseconds()}).Info("request")
}

type logKey struct{}

type requestLog struct {
	entry *logrus.Entry
	id    string
}

// logOf returns the request's log entry (its request id, then its caller).
func logOf(r *http.Request) *logrus.Entry {
	if rl, ok := r.Context().Value(logKey{}).(*requestLog); ok {
		return rl.entry
	}
	return logrus.NewEntry(logrus.StandardLogger())
}

// requestID returns the request's X-Openstack-Request-Id.
func requestID(r *http.Request) string {
	if rl, ok := r.Context().Value(logKey{}).(*requestLog); ok {
		return rl.id
	}
	return ""
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// handler is an API handler: it answers, or returns the error to answer
// with.
type handler func(w http.ResponseWriter, r *http.Request) error

// api wraps h with authentication and microversion negotiation.
func (s *Server) api(v apiVersions, h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token := r.Header.Get("X-Auth-Token")
		id, err := s.cfg.Auth.Authenticate(r.Context(), token)
		if err != nil {
			if errors.Is(err, ErrUnauthorized) {
				logOf(r).Info("unauthenticated request")
				unauthorized(w, s.cfg.AuthURL)
				return
			}
			writeError(w, r, &HTTPError{Status: http.StatusServiceUnavailable, Message: "The identity service could not validate the token."})
			logOf(r).WithError(err).Error("token validation failed")
			return
		}
		if rl, ok := r.Context().Value(logKey{}).(*requestLog); ok {
			rl.entry = rl.entry.WithFields(logrus.Fields{"user": id.UserID, "project": id.ProjectID})
		}
		ver, err := v.negotiate(r)
		if err != nil {
			writeError(w, r, err)
			return
		}
		v.setHeaders(w, ver)
		ctx := withIdentity(r.Context(), id)
		ctx = context.WithValue(ctx, versionKey{}, ver)
		if id.Service() {
			// A caller Keystone says has the service role is a service
			// (upstream is_service_request): attachment_deletion_allowed
			// lets it remove an attachment an instance uses.
			ctx = volume.WithServiceToken(ctx)
		}
		if err := h(w, r.WithContext(ctx)); err != nil {
			writeError(w, r, err)
		}
	}
}

type versionKey struct{}

// versionOf returns the request's negotiated microversion.
func versionOf(r *http.Request) Version {
	v, _ := r.Context().Value(versionKey{}).(Version)
	return v
}

// writeJSON answers status with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// routes registers every route of both APIs.
func (s *Server) routes() {
	n := func(pattern string, h handler) {
		method, path, _ := strings.Cut(pattern, " ")
		s.mux.Handle(method+" "+ComputePrefix+"/v2.1"+path, s.api(novaVersions, h))
	}
	s.mux.HandleFunc("GET "+ComputePrefix+"/{$}", s.novaVersionsDoc)
	s.mux.HandleFunc("GET "+ComputePrefix+"/v2.1", s.novaVersionDoc)
	s.mux.HandleFunc("GET "+ComputePrefix+"/v2.1/{$}", s.novaVersionDoc)
	n("GET /servers", s.listServers(false))
	n("GET /servers/detail", s.listServers(true))
	n("GET /servers/{server}", s.showServer)
	n("GET /servers/{server}/os-volume_attachments", s.listVolumeAttachments)
	n("POST /servers/{server}/os-volume_attachments", s.createVolumeAttachment)
	n("GET /servers/{server}/os-volume_attachments/{volume}", s.showVolumeAttachment)
	n("PUT /servers/{server}/os-volume_attachments/{volume}", s.updateVolumeAttachment)
	n("DELETE /servers/{server}/os-volume_attachments/{volume}", s.deleteVolumeAttachment)

	c := func(pattern string, h handler) {
		method, path, _ := strings.Cut(pattern, " ")
		s.mux.Handle(method+" "+VolumePrefix+"/v3/{project}"+path, s.api(cinderVersions, s.projectInPath(h)))
	}
	s.mux.HandleFunc("GET "+VolumePrefix+"/{$}", s.cinderVersionsDoc)
	s.mux.HandleFunc("GET "+VolumePrefix+"/v3", s.cinderVersionDoc)
	s.mux.HandleFunc("GET "+VolumePrefix+"/v3/{$}", s.cinderVersionDoc)
	c("GET /volumes", s.listVolumes(false))
	c("GET /volumes/detail", s.listVolumes(true))
	c("POST /volumes", s.createVolume)
	c("GET /volumes/{volume}", s.showVolume)
	c("DELETE /volumes/{volume}", s.deleteVolume)
	c("POST /volumes/{volume}/action", s.volumeAction)
	c("GET /attachments", s.listAttachments(false))
	c("GET /attachments/detail", s.listAttachments(true))
	c("POST /attachments", s.createAttachment)
	c("GET /attachments/{attachment}", s.showAttachment)
	c("PUT /attachments/{attachment}", s.updateAttachment)
	c("DELETE /attachments/{attachment}", s.deleteAttachment)
	c("POST /attachments/{attachment}/action", s.attachmentAction)

	s.mux.HandleFunc("GET "+ImagePrefix, s.imageVersionsDoc)
	s.mux.HandleFunc("GET "+ImagePrefix+"/{$}", s.imageVersionsDoc)

	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, notFound("The resource could not be found."))
	})
}

// projectInPath refuses a Cinder URL whose project is not the caller's
// (upstream cinder/api/openstack/wsgi.py: "Malformed request url", 400),
// unless the caller is an admin.
func (s *Server) projectInPath(h handler) handler {
	return func(w http.ResponseWriter, r *http.Request) error {
		id := identityOf(r)
		if p := r.PathValue("project"); p != id.ProjectID && !id.Admin() {
			return badRequest("Malformed request url")
		}
		return h(w, r)
	}
}

// requireAdmin refuses a caller without the admin role (403, upstream's
// policy "rule:admin_api").
func requireAdmin(r *http.Request, action string) error {
	if !identityOf(r).Admin() {
		return forbidden("Policy doesn't allow %s to be performed.", action)
	}
	return nil
}
