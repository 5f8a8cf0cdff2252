package volume_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/volattach/volattach/volume"
)

// TestParseConnectorNull (review L5): JSON null is not a connector object;
// it is refused as InvalidInput, not read as an empty connector.
func TestParseConnectorNull(t *testing.T) {
	for _, in := range []string{`null`, ` null `, "null\n"} {
		c, err := volume.ParseConnector([]byte(in))
		if !errors.Is(err, volume.ErrInvalidInput) {
			t.Errorf("ParseConnector(%q) = %+v, %v; want InvalidInput", in, c, err)
		}
	}
}

// TestConnectorHostDisplaysAsItIs (review L6): the host name is stored as
// attached_host and shown to operators, so Validate refuses every
// character that would print as something else.
func TestConnectorHostDisplaysAsItIs(t *testing.T) {
	for _, h := range []string{
		"a\x00b", "a\tb", "a\nb", "a\x7fb", // C0, DEL
		"a\u0085b", "a\u009bb", // C1 (NEL, CSI)
		"evil\u202egpj.exe", "a\u202ab", "a\u2066b", "a\u200fb", // bidi overrides, embeddings, isolates, marks
		"a\u2028b", "a\u2029b", // line and paragraph separators
		"a\u200bb", "a\u200db", "a\ufeffb", "a\u00adb", // zero-width, joiner, BOM, soft hyphen
		"a\ue000b",          // private use
		"a\xffb",            // not UTF-8
		string(rune(0x378)), // unassigned
	} {
		if err := (volume.Connector{Host: h}).Validate(); !errors.Is(err, volume.ErrInvalidInput) {
			t.Errorf("Connector{Host: %+q}.Validate() = %v; want InvalidInput", h, err)
		}
	}
	for _, h := range []string{"", "compute-1", "compute-1.example.org", "hôte-1", "节点", "a b"} {
		if err := (volume.Connector{Host: h}).Validate(); err != nil {
			t.Errorf("Connector{Host: %+q}.Validate() = %v", h, err)
		}
	}
}

// FuzzParseConnector: the connector JSON of os-initialize_connection and
// POST /attachments. A refusal is a typed InvalidInput; an accepted
// connector validates and survives a JSON round trip unchanged.
func FuzzParseConnector(f *testing.F) {
	f.Add([]byte(`{"host":"compute-1","ip":"127.0.0.1","initiator":"iqn.2004-10.org:x","multipath":false,"mode":"rw"}`))
	f.Add([]byte(`{"host":"h","mountpoint":"/dev/vdb","platform":"x86_64","os_type":"linux2"}`))
	f.Add([]byte(`{"HOST":"a","host":"b"}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"host":"a\u0085b"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := volume.ParseConnector(data)
		if err != nil {
			if !errors.Is(err, volume.ErrInvalidInput) {
				t.Fatalf("untyped refusal of %q: %v", data, err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted connector does not validate: %v", err)
		}
		raw, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		c2, err := volume.ParseConnector(raw)
		if err != nil || c2 != c {
			t.Fatalf("round trip of %+v: %+v %v", c, c2, err)
		}
	})
}
