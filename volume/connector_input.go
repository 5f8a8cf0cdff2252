package volume

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
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
	var c Connector
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Connector{}, connectorDecodeError(err)
	}
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

// Validate checks what the volume side itself relies on in a connector: a
// mode of rw or ro when given, and a host name without control characters.
// Whether the connector suits a backend (an initiator for iSCSI, an address)
// is the backend's check (ConnectorValidator).
func (c Connector) Validate() error {
	switch c.Mode {
	case "", ModeRW, ModeRO:
	default:
		return newError(ErrInvalidInput, RuleConnectorValid, "connector: mode %q is neither rw nor ro", c.Mode)
	}
	if strings.ContainsFunc(c.Host, func(r rune) bool { return r < ' ' || r == 0x7f }) || len(c.Host) > 255 {
		return newError(ErrInvalidInput, RuleConnectorValid, "connector: host %q is not a host name", c.Host)
	}
	return nil
}
