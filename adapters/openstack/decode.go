package openstack

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/volattach/volattach/volume"
)

// DefaultMaxBodyBytes is the largest request body accepted (upstream
// [oslo_middleware] max_request_body_size, 114688 bytes).
const DefaultMaxBodyBytes = 114688

// readBody reads a JSON request body: the content type must be JSON
// (415 otherwise; none given is taken as JSON, as clients that send no
// body do), the body at most limit bytes (413), and one well-formed JSON
// object (400 "Malformed request body").
func readBody(r *http.Request, limit int64) (object, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return nil, &HTTPError{Status: http.StatusUnsupportedMediaType, Message: "Unsupported Content-Type"}
		}
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, badRequest("Malformed request body: %v", err)
	}
	if int64(len(data)) > limit {
		return nil, &HTTPError{Status: http.StatusRequestEntityTooLarge, Message: "Request is too large."}
	}
	return decodeObject(data)
}

// decodeObject decodes data as exactly one JSON object.
func decodeObject(data []byte) (object, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return nil, badRequest("Malformed request body")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, badRequest("Malformed request body")
	}
	var o object
	if err := json.Unmarshal(raw, &o); err != nil || o == nil {
		return nil, badRequest("Malformed request body: the body must be a JSON object")
	}
	return o, nil
}

// object is one JSON object of a request body, checked field by field
// like upstream's JSON schemas check it.
type object map[string]json.RawMessage

// invalid is upstream's schema error text: "Invalid input for
// field/attribute <field>. <reason>".
func invalid(field, format string, args ...any) *HTTPError {
	return badRequest("Invalid input for field/attribute %s. %s", field, sprintf(format, args...))
}

// only refuses any member of o not in allowed ("Additional properties are
// not allowed"), naming the unexpected ones in sorted order, and any
// required member that is missing.
func (o object) only(field string, required []string, allowed ...string) error {
	var extra []string
	for k := range o {
		if !slices.Contains(allowed, k) && !slices.Contains(required, k) {
			extra = append(extra, k)
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		return invalid(field, "Additional properties are not allowed ('%s' %s unexpected)",
			strings.Join(extra, "', '"), wasWere(len(extra)))
	}
	for _, k := range required {
		if _, ok := o[k]; !ok {
			return invalid(field, "'%s' is a required property", k)
		}
	}
	return nil
}

func wasWere(n int) string {
	if n == 1 {
		return "was"
	}
	return "were"
}

// has reports whether member name is present (even as null).
func (o object) has(name string) bool { _, ok := o[name]; return ok }

// isNull reports whether member name is absent or null.
func (o object) isNull(name string) bool {
	v, ok := o[name]
	return !ok || string(bytes.TrimSpace(v)) == "null"
}

// child returns member name as an object; required says whether it must
// be present (and not null).
func (o object) child(field, name string, required bool) (object, error) {
	if o.isNull(name) {
		if required {
			if !o.has(name) {
				return nil, invalid(field, "'%s' is a required property", name)
			}
			return nil, invalid(name, "None is not of type 'object'")
		}
		return nil, nil
	}
	var c object
	if err := json.Unmarshal(o[name], &c); err != nil || c == nil {
		return nil, invalid(name, "%s is not of type 'object'", o[name])
	}
	return c, nil
}

// str returns member name as a string ("" when absent; null only when
// nullable) of at most maxLen characters (0: no limit).
func (o object) str(name string, nullable bool, maxLen int) (string, error) {
	if !o.has(name) {
		return "", nil
	}
	if o.isNull(name) {
		if nullable {
			return "", nil
		}
		return "", invalid(name, "None is not of type 'string'")
	}
	var s string
	if err := json.Unmarshal(o[name], &s); err != nil {
		return "", invalid(name, "%s is not of type 'string'", o[name])
	}
	if maxLen > 0 && len([]rune(s)) > maxLen {
		return "", invalid(name, "'%s' is too long", s)
	}
	return s, nil
}

// uuid returns member name as a UUID string (upstream format "uuid").
func (o object) uuid(name string, nullable bool) (string, error) {
	s, err := o.str(name, nullable, 0)
	if err != nil || o.isNull(name) {
		return s, err
	}
	if !volume.IsUUIDLike(s) {
		return "", invalid(name, "'%s' is not a 'uuid'", s)
	}
	return s, nil
}

// boolean returns member name as a boolean: JSON true/false, or one of
// the strings upstream's parameter_types.boolean accepts.
func (o object) boolean(name string) (bool, error) {
	if o.isNull(name) {
		if o.has(name) {
			return false, invalid(name, "None is not of type 'boolean'")
		}
		return false, nil
	}
	var b bool
	if err := json.Unmarshal(o[name], &b); err == nil {
		return b, nil
	}
	var s string
	if err := json.Unmarshal(o[name], &s); err == nil {
		switch strings.ToLower(s) {
		case "true", "1", "yes", "on", "t", "y":
			return true, nil
		case "false", "0", "no", "off", "f", "n":
			return false, nil
		}
	}
	return false, invalid(name, "%s is not of type 'boolean'", o[name])
}

// integer returns member name as an integer in [min, max].
func (o object) integer(name string, lo, hi int64) (int64, error) {
	if o.isNull(name) {
		return 0, invalid(name, "None is not of type 'integer'")
	}
	var n json.Number
	if err := json.Unmarshal(o[name], &n); err != nil {
		// Upstream accepts a string of digits ("1") for sizes.
		var s string
		if json.Unmarshal(o[name], &s) != nil {
			return 0, invalid(name, "%s is not of type 'integer'", o[name])
		}
		n = json.Number(s)
	}
	v, err := n.Int64()
	if err != nil {
		return 0, invalid(name, "%s is not of type 'integer'", o[name])
	}
	if v < lo {
		return 0, invalid(name, "%d is less than the minimum of %d", v, lo)
	}
	if v > hi {
		return 0, invalid(name, "%d is greater than the maximum of %d", v, hi)
	}
	return v, nil
}

// stringMap returns member name as an object of strings (a connector).
func (o object) anyMap(name string) (map[string]any, error) {
	if o.isNull(name) {
		return nil, nil
	}
	var m map[string]any
	if err := json.Unmarshal(o[name], &m); err != nil {
		return nil, invalid(name, "%s is not of type 'object'", o[name])
	}
	return m, nil
}

// connector decodes member name as a host connector with the volume
// side's own parser (its rules stay there).
func (o object) connector(name string, required bool) (*volume.Connector, error) {
	if o.isNull(name) {
		if required {
			return nil, invalid(name, "'%s' is a required property", name)
		}
		return nil, nil
	}
	c, err := volume.ParseConnector(o[name])
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// action returns the one member of an action body and its value: Cinder's
// and Nova's action bodies name exactly one action.
func (o object) action() (string, json.RawMessage, error) {
	if len(o) != 1 {
		keys := make([]string, 0, len(o))
		for k := range o {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return "", nil, badRequest("There is either no action or more than one in the request body: %v", keys)
	}
	var name string
	for k := range o {
		name = k
	}
	return name, o[name], nil
}

func sprintf(format string, args ...any) string {
	if len(args) == 0 {
		return format
	}
	return fmt.Sprintf(format, args...)
}
