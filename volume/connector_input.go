package volume

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// RuleConnectorFields names the refusal of a connector with fields this
// library does not know.
const RuleConnectorFields = "connector_fields_known"

// RuleConnectorValid names the refusal of a malformed connector.
const RuleConnectorValid = "connector_valid"

// ParseConnector decodes a connector from its JSON form (the "connector"
// object of os-initialize_connection or POST /attachments). A field Connector
// does not have is refused with InvalidInput (400) naming it, rather than
// silently dropped: a caller that sends a field expects it to matter.
func ParseConnector(data []byte) (Connector, error) {
	var p *Connector
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return Connector{}, connectorDecodeError(err)
	}
	if p == nil {
		// JSON null is not a connector object (it would decode as an
		// empty one).
		return Connector{}, newError(ErrInvalidInput, RuleConnectorValid, "connector: null is not a connector object")
	}
	c := *p
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Connector{}, newError(ErrInvalidInput, RuleConnectorValid, "connector: trailing data after the object")
	}
	if err := c.Validate(); err != nil {
		return Connector{}, err
	}
	return c, nil
}

// ConnectorFromMap builds a connector from a decoded JSON object (for
// example a field of a larger request body), with ParseConnector's rules.
func ConnectorFromMap(m map[string]any) (Connector, error) {
	if m == nil {
		return Connector{}, newError(ErrInvalidInput, RuleConnectorValid, "connector: missing")
	}
	data, err := json.Marshal(m)
	if err != nil {
		return Connector{}, &Error{Kind: ErrInvalidInput, Rule: RuleConnectorValid, Reason: "connector: not a JSON object", Err: err}
	}
	return ParseConnector(data)
}

func connectorDecodeError(err error) error {
	msg := err.Error()
	if field, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return &Error{Kind: ErrInvalidInput, Rule: RuleConnectorFields, Reason: fmt.Sprintf("connector: unknown field %s", field)}
	}
	return &Error{Kind: ErrInvalidInput, Rule: RuleConnectorValid, Reason: "connector: malformed", Err: err}
}

// maxHostLen bounds a connector's host name (a DNS name has at most 255
// bytes).
const maxHostLen = 255

// Validate checks what the volume side itself relies on in a connector: a
// mode of rw or ro when given, and a host name that displays as what it is
// (hostNameChar). Whether the connector suits a backend (an initiator for
// iSCSI, an address) is the backend's check (ConnectorValidator).
func (c Connector) Validate() error {
	switch c.Mode {
	case "", ModeRW, ModeRO:
	default:
		return newError(ErrInvalidInput, RuleConnectorValid, "connector: mode %s is neither rw nor ro", quoteID(c.Mode))
	}
	if len(c.Host) > maxHostLen || !utf8.ValidString(c.Host) || strings.ContainsFunc(c.Host, func(r rune) bool { return !hostNameChar(r) }) {
		return newError(ErrInvalidInput, RuleConnectorValid, "connector: host %s is not a host name", quoteID(c.Host))
	}
	return nil
}

// hostNameChar reports whether r may appear in a connector's host name. The
// name is stored as an attachment's attached_host and shown to operators,
// so it refuses what would print as something else: C0 and C1 controls and
// DEL (Cc), format characters such as bidi overrides and zero-width ones
// (Cf), line and paragraph separators (Zl, Zp), and unassigned, surrogate
// and private-use code points.
func hostNameChar(r rune) bool {
	return r != utf8.RuneError && !unicode.In(r, unicode.Cc, unicode.Cf, unicode.Co, unicode.Cs, unicode.Zl, unicode.Zp) &&
		unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S, unicode.Zs)
}
