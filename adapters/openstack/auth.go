package openstack

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/volattach/volattach/volume"
)

// Role names with a meaning here.
const (
	// RoleAdmin is the role of operators: admin actions, other projects.
	RoleAdmin = "admin"
	// RoleService is the role of the OpenStack services calling each other
	// (Nova calling Cinder), checked by attachment_deletion_allowed.
	RoleService = "service"
)

// ErrUnauthorized: no token, or a token the identity service does not
// accept (401).
var ErrUnauthorized = errors.New("openstack: the request you have made requires authentication")

// Identity is who makes a request, as the token says.
type Identity struct {
	UserID    string
	UserName  string
	ProjectID string
	Roles     []string
}

// Admin reports whether the identity has the admin role.
func (id Identity) Admin() bool { return slices.Contains(id.Roles, RoleAdmin) }

// Service reports whether the identity has the service role.
func (id Identity) Service() bool { return slices.Contains(id.Roles, RoleService) }

// canSee reports whether the identity may see a resource of project:
// its own project's, or any as admin.
func (id Identity) canSee(project string) bool {
	return id.Admin() || (project != "" && project == id.ProjectID)
}

// volumeCaller is the identity as the volume side's Caller.
func (id Identity) volumeCaller() volume.Caller {
	return volume.Caller{Admin: id.Admin(), ProjectID: id.ProjectID, Service: id.Service()}
}

// Authenticator turns a request's X-Auth-Token into an Identity, or
// ErrUnauthorized.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (Identity, error)
}

// NoAuth is upstream's noauth2 (nova/api/openstack/auth.py
// NoAuthMiddleware): the token is "user:project" (or "user", whose project
// is its own name) and is not checked; the user named admin has the admin
// role. For a single-machine set-up and tests only.
type NoAuth struct{}

// Authenticate parses the token.
func (NoAuth) Authenticate(_ context.Context, token string) (Identity, error) {
	token = strings.TrimSpace(token)
	if token == "" {
		return Identity{}, ErrUnauthorized
	}
	user, project, ok := strings.Cut(token, ":")
	if !ok {
		project = user
	}
	if user == "" || project == "" {
		return Identity{}, ErrUnauthorized
	}
	id := Identity{UserID: user, UserName: user, ProjectID: project, Roles: []string{"member", "reader"}}
	if user == RoleAdmin {
		id.Roles = append(id.Roles, RoleAdmin)
	}
	return id, nil
}

type identityKey struct{}

func withIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// identityOf returns the authenticated caller of r.
func identityOf(r *http.Request) Identity {
	id, _ := r.Context().Value(identityKey{}).(Identity)
	return id
}

// unauthorized answers 401 the way keystonemiddleware does.
func unauthorized(w http.ResponseWriter, realm string) {
	w.Header().Set("WWW-Authenticate", "Keystone uri='"+realm+"'")
	writeJSON(w, http.StatusUnauthorized, map[string]any{"error": map[string]any{
		"code": http.StatusUnauthorized, "title": "Unauthorized",
		"message": "The request you have made requires authentication.",
	}})
}
