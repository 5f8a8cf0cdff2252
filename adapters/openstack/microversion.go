package openstack

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// Version is an API microversion, such as 2.60.
type Version struct{ Major, Minor int }

// String formats v as "2.60".
func (v Version) String() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

// AtLeast reports whether v >= o.
func (v Version) AtLeast(o Version) bool {
	return v.Major > o.Major || (v.Major == o.Major && v.Minor >= o.Minor)
}

// The microversions each API serves, and the ones whose behaviour this
// slice implements (nova/api/openstack/api_version_request.py,
// cinder/api/microversions.py).
var (
	NovaMin = Version{2, 1}
	// NovaMax is the newest Nova microversion served.
	NovaMax = Version{2, 101}

	novaShelved          = Version{2, 20}  // attach/detach on shelved(_offloaded) instances
	novaTag              = Version{2, 49}  // tag in the attach request
	novaMultiattach      = Version{2, 60}  // multiattach volumes
	novaTagShown         = Version{2, 70}  // tag in the attachment view
	novaDeleteOnTerm     = Version{2, 79}  // delete_on_termination
	novaAttachmentUpdate = Version{2, 85}  // PUT updates delete_on_termination
	novaAttachmentIDs    = Version{2, 89}  // attachment_id, bdm_uuid; no id
	novaAsyncAttach      = Version{2, 101} // POST answers 202, no body
	CinderMin            = Version{3, 0}
	CinderMax            = Version{3, 60}
	cinderAttachments    = Version{3, 27}
	cinderComplete       = Version{3, 44}
	cinderMultiattach    = Version{3, 50}
	cinderAttachMode     = Version{3, 54}
	novaServiceType      = "compute"
	cinderServiceType    = "volume"
	novaLegacyHeader     = "X-OpenStack-Nova-API-Version"
	cinderLegacyHeader   = "X-OpenStack-Volume-API-Version"
)

// apiVersions says how one API negotiates its microversion.
type apiVersions struct {
	service      string // "compute" or "volume" in OpenStack-API-Version
	legacyHeader string
	min, max     Version
}

var (
	novaVersions   = apiVersions{novaServiceType, novaLegacyHeader, NovaMin, NovaMax}
	cinderVersions = apiVersions{cinderServiceType, cinderLegacyHeader, CinderMin, CinderMax}
)

// negotiate reads the requested microversion (OpenStack-API-Version:
// "<service> X.Y", else the legacy header; none: the minimum; "latest":
// the maximum). A malformed one is 400; one outside the range is 406.
func (a apiVersions) negotiate(r *http.Request) (Version, error) {
	raw := ""
	for _, h := range r.Header.Values("OpenStack-API-Version") {
		for _, part := range strings.Split(h, ",") {
			f := strings.Fields(part)
			if len(f) == 2 && strings.EqualFold(f[0], a.service) {
				raw = f[1]
			}
		}
	}
	if raw == "" {
		raw = strings.TrimSpace(r.Header.Get(a.legacyHeader))
	}
	switch {
	case raw == "":
		return a.min, nil
	case strings.EqualFold(raw, "latest"):
		return a.max, nil
	}
	v, ok := parseVersion(raw)
	if !ok {
		return Version{}, badRequest("API Version String %s is of invalid format. Must be of format MajorNum.MinorNum.", raw)
	}
	if !v.AtLeast(a.min) || !a.max.AtLeast(v) {
		return Version{}, &HTTPError{Status: http.StatusNotAcceptable,
			Message: fmt.Sprintf("Version %s is not supported by the API. Minimum is %s and maximum is %s.", v, a.min, a.max)}
	}
	return v, nil
}

// setHeaders answers with the microversion used, as upstream does.
func (a apiVersions) setHeaders(w http.ResponseWriter, v Version) {
	h := w.Header()
	h.Set("OpenStack-API-Version", a.service+" "+v.String())
	h.Set(a.legacyHeader, v.String())
	h.Add("Vary", "OpenStack-API-Version")
	h.Add("Vary", a.legacyHeader)
}

func parseVersion(s string) (Version, bool) {
	maj, min, ok := strings.Cut(s, ".")
	if !ok {
		return Version{}, false
	}
	a, err1 := strconv.Atoi(maj)
	b, err2 := strconv.Atoi(min)
	if err1 != nil || err2 != nil || a < 0 || b < 0 || strings.HasPrefix(min, "+") || strings.HasPrefix(maj, "+") {
		return Version{}, false
	}
	return Version{a, b}, true
}
