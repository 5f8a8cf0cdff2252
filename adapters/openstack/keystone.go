package openstack

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// KeystoneConfig says how to validate tokens against a Keystone (v3)
// identity service with the service's own credentials (what
// keystonemiddleware's [keystone_authtoken] section says upstream).
type KeystoneConfig struct {
	// URL is the identity endpoint, for example http://127.0.0.1:5000/v3.
	URL string
	// Username, Password, ProjectName and the domains are the service
	// user's credentials; the password is never logged. Domains default to
	// "Default".
	Username, Password, ProjectName string
	UserDomain, ProjectDomain       string
	// CacheTTL bounds how long a validated token is trusted without asking
	// Keystone again (never past its expiry); default 5 minutes, as
	// keystonemiddleware's token_cache_time.
	CacheTTL time.Duration
	// Client is the HTTP client; default one with a 10 s timeout.
	Client *http.Client
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// maxCachedTokens bounds the validated-token cache; past it, expired
// entries are dropped, then the whole cache if need be.
const maxCachedTokens = 10000

// Keystone validates X-Auth-Token with GET /v3/auth/tokens, authenticated
// with a service token it obtains and renews itself, and caches each
// answer until the token's expiry or CacheTTL, whichever comes first.
// Tokens are cached by their SHA-256, never kept in clear.
type Keystone struct {
	cfg KeystoneConfig

	mu           sync.Mutex
	serviceToken string
	serviceUntil time.Time
	cache        map[[32]byte]cachedIdentity
}

type cachedIdentity struct {
	id    Identity
	until time.Time
}

// ErrKeystoneConfig: the configuration lacks the URL or the credentials.
var ErrKeystoneConfig = errors.New("openstack: keystone needs a URL, a username, a password and a project")

// NewKeystone returns a Keystone authenticator.
func NewKeystone(cfg KeystoneConfig) (*Keystone, error) {
	if cfg.URL == "" || cfg.Username == "" || cfg.Password == "" || cfg.ProjectName == "" {
		return nil, ErrKeystoneConfig
	}
	cfg.URL = strings.TrimRight(cfg.URL, "/")
	if cfg.UserDomain == "" {
		cfg.UserDomain = "Default"
	}
	if cfg.ProjectDomain == "" {
		cfg.ProjectDomain = "Default"
	}
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = 5 * time.Minute
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Keystone{cfg: cfg, cache: map[[32]byte]cachedIdentity{}}, nil
}

// tokenBody is the part of Keystone's token body read here.
type tokenBody struct {
	Token struct {
		ExpiresAt time.Time `json:"expires_at"`
		User      struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"user"`
		Project *struct {
			ID string `json:"id"`
		} `json:"project"`
		Roles []struct {
			Name string `json:"name"`
		} `json:"roles"`
	} `json:"token"`
}

// Authenticate validates token (cached) and returns whom it names. A
// token Keystone refuses, or one not scoped to a project, is
// ErrUnauthorized; Keystone unreachable is another error (503).
func (k *Keystone) Authenticate(ctx context.Context, token string) (Identity, error) {
	if token == "" {
		return Identity{}, ErrUnauthorized
	}
	key := sha256.Sum256([]byte(token))
	now := k.cfg.Now()
	k.mu.Lock()
	if c, ok := k.cache[key]; ok && now.Before(c.until) {
		k.mu.Unlock()
		return c.id, nil
	}
	k.mu.Unlock()

	var body tokenBody
	status, err := k.validate(ctx, token, &body, false)
	if err == nil && status == http.StatusUnauthorized {
		// Our service token may have been revoked: renew it once.
		status, err = k.validate(ctx, token, &body, true)
	}
	if err != nil {
		return Identity{}, err
	}
	switch {
	case status == http.StatusNotFound || status == http.StatusUnauthorized:
		return Identity{}, ErrUnauthorized
	case status != http.StatusOK:
		return Identity{}, fmt.Errorf("openstack: keystone answered %d to a token validation", status)
	case body.Token.Project == nil || body.Token.Project.ID == "":
		return Identity{}, ErrUnauthorized
	}
	id := Identity{UserID: body.Token.User.ID, UserName: body.Token.User.Name, ProjectID: body.Token.Project.ID}
	for _, r := range body.Token.Roles {
		id.Roles = append(id.Roles, r.Name)
	}
	until := now.Add(k.cfg.CacheTTL)
	if !body.Token.ExpiresAt.IsZero() && body.Token.ExpiresAt.Before(until) {
		until = body.Token.ExpiresAt
	}
	k.mu.Lock()
	if len(k.cache) >= maxCachedTokens {
		for h, c := range k.cache {
			if !now.Before(c.until) {
				delete(k.cache, h)
			}
		}
		if len(k.cache) >= maxCachedTokens {
			clear(k.cache)
		}
	}
	k.cache[key] = cachedIdentity{id: id, until: until}
	k.mu.Unlock()
	return id, nil
}

// validate asks Keystone about token with the service token.
func (k *Keystone) validate(ctx context.Context, token string, into *tokenBody, renew bool) (int, error) {
	st, err := k.service(ctx, renew)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.cfg.URL+"/auth/tokens", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("X-Auth-Token", st)
	req.Header.Set("X-Subject-Token", token)
	req.Header.Set("Accept", "application/json")
	resp, err := k.cfg.Client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("openstack: keystone token validation: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(into); err != nil {
			return 0, fmt.Errorf("openstack: keystone token body: %w", err)
		}
	}
	return resp.StatusCode, nil
}

// service returns a valid service token, obtaining a new one when the
// current one expires within a minute (or renew says so).
func (k *Keystone) service(ctx context.Context, renew bool) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !renew && k.serviceToken != "" && k.cfg.Now().Add(time.Minute).Before(k.serviceUntil) {
		return k.serviceToken, nil
	}
	tok, until, err := k.issue(ctx)
	if err != nil {
		return "", err
	}
	k.serviceToken, k.serviceUntil = tok, until
	return tok, nil
}

// issue obtains a project-scoped token with the service's password.
func (k *Keystone) issue(ctx context.Context) (string, time.Time, error) {
	var auth struct {
		Auth struct {
			Identity struct {
				Methods  []string `json:"methods"`
				Password struct {
					User struct {
						Name     string            `json:"name"`
						Domain   map[string]string `json:"domain"`
						Password string            `json:"password"`
					} `json:"user"`
				} `json:"password"`
			} `json:"identity"`
			Scope struct {
				Project struct {
					Name   string            `json:"name"`
					Domain map[string]string `json:"domain"`
				} `json:"project"`
			} `json:"scope"`
		} `json:"auth"`
	}
	a := &auth.Auth
	a.Identity.Methods = []string{"password"}
	a.Identity.Password.User.Name = k.cfg.Username
	a.Identity.Password.User.Domain = map[string]string{"name": k.cfg.UserDomain}
	a.Identity.Password.User.Password = k.cfg.Password
	a.Scope.Project.Name = k.cfg.ProjectName
	a.Scope.Project.Domain = map[string]string{"name": k.cfg.ProjectDomain}
	data, err := json.Marshal(auth)
	if err != nil {
		return "", time.Time{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, k.cfg.URL+"/auth/tokens", bytes.NewReader(data))
	if err != nil {
		return "", time.Time{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := k.cfg.Client.Do(req)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("openstack: keystone service login: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return "", time.Time{}, fmt.Errorf("openstack: keystone refused the service credentials of %s (%d)", k.cfg.Username, resp.StatusCode)
	}
	var body tokenBody
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil {
		return "", time.Time{}, fmt.Errorf("openstack: keystone service token body: %w", err)
	}
	tok := resp.Header.Get("X-Subject-Token")
	if tok == "" {
		return "", time.Time{}, errors.New("openstack: keystone gave no service token")
	}
	return tok, body.Token.ExpiresAt, nil
}
