package openstack

import (
	"net/http"
)

// versionDoc is one entry of a version discovery document.
type versionDoc struct {
	ID         string              `json:"id"`
	Status     string              `json:"status"`
	Version    string              `json:"version"`
	MinVersion string              `json:"min_version"`
	Updated    string              `json:"updated"`
	Links      []link              `json:"links"`
	MediaTypes []map[string]string `json:"media-types"`
}

type link struct {
	Rel  string `json:"rel"`
	Href string `json:"href"`
	Type string `json:"type,omitempty"`
}

// baseURL is the scheme and host the client reached us at.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func novaVersion(r *http.Request) versionDoc {
	return versionDoc{
		ID: "v2.1", Status: "CURRENT", Version: NovaMax.String(), MinVersion: NovaMin.String(),
		Updated: "2013-07-23T11:33:21Z",
		Links:   []link{{Rel: "self", Href: baseURL(r) + ComputePrefix + "/v2.1/"}},
		MediaTypes: []map[string]string{{"base": "application/json",
			"type": "application/vnd.openstack.compute+json;version=2.1"}},
	}
}

func cinderVersion(r *http.Request) versionDoc {
	return versionDoc{
		ID: "v3.0", Status: "CURRENT", Version: CinderMax.String(), MinVersion: CinderMin.String(),
		Updated: "2023-08-31T00:00:00Z",
		Links:   []link{{Rel: "self", Href: baseURL(r) + VolumePrefix + "/v3/"}},
		MediaTypes: []map[string]string{{"base": "application/json",
			"type": "application/vnd.openstack.volume+json;version=3"}},
	}
}

// novaVersionsDoc is GET /compute/: every major version (nova answers 200).
func (s *Server) novaVersionsDoc(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"versions": []versionDoc{novaVersion(r)}})
}

// novaVersionDoc is GET /compute/v2.1/.
func (s *Server) novaVersionDoc(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"version": novaVersion(r)})
}

// cinderVersionsDoc is GET /volume/ (cinder answers 300 Multiple Choices).
func (s *Server) cinderVersionsDoc(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusMultipleChoices, map[string]any{"versions": []versionDoc{cinderVersion(r)}})
}

// cinderVersionDoc is GET /volume/v3/.
func (s *Server) cinderVersionDoc(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"versions": []versionDoc{cinderVersion(r)}})
}

// ImagePrefix is where an image service's version document is served. No
// image API is: the openstack client's volume commands build an image
// client first, and its version discovery needs an answer.
const ImagePrefix = "/image"

// imageVersionsDoc is GET /image: Glance's version document, naming v2 with
// no resources behind it.
func (s *Server) imageVersionsDoc(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusMultipleChoices, map[string]any{"versions": []map[string]any{{
		"id": "v2.16", "status": "CURRENT",
		"links": []link{{Rel: "self", Href: baseURL(r) + ImagePrefix + "/v2/"}},
	}}})
}
