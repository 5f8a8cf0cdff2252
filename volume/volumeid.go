package volume

import (
	"fmt"
	"regexp"
	"strconv"
	"unicode/utf8"
)

// RuleVolumeIDValid names the refusal of a volume id the Service does not
// create (ValidateVolumeID).
const RuleVolumeIDValid = "volume_id_valid"

// MaxVolumeIDLen bounds the id of a volume the Service creates: the
// built-in backends name files, iSCSI targets and NBD exports after it, and
// refuse a longer one (an iSCSI name has at most 223 bytes, RFC 3720).
const MaxVolumeIDLen = 128

// maxLookupIDLen bounds an id the Service looks up. It is wider than
// MaxVolumeIDLen so that a record stored before the creation rule existed
// (or by hand) can still be read and deleted, and narrow enough that a
// hostile id never reaches the store or an error message in full.
const maxLookupIDLen = 1024

// volumeIDPattern is the id rule every built-in backend applies
// (adapters/storage ValidateVolumeID): letters, digits, '.', '_' and '-',
// starting with a letter or digit, so never "." or "..", no path separator,
// no ':' (the separator of compound store keys), no space, no control or
// format character and nothing outside ASCII.
var volumeIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// ValidateVolumeID is the rule of the id of a volume the Service creates:
// non-empty, at most MaxVolumeIDLen bytes of letters, digits, '.', '_' and
// '-', starting with a letter or digit. Every built-in backend accepts every
// id this rule accepts (the rule is no wider than theirs), so a volume is
// never recorded that its backend cannot hold. A refusal is InvalidInput
// (400) naming the rule; it quotes at most a bounded prefix of the id.
//
// Upstream cinder takes any string as a volume's name and generates its id;
// here the caller may choose the id, so the Service refuses at the door what
// no backend can hold instead of recording it and failing with a 500.
func ValidateVolumeID(id string) error {
	switch {
	case id == "":
		return newError(ErrInvalidInput, RuleVolumeIDValid, "volume id is empty")
	case len(id) > MaxVolumeIDLen:
		return newError(ErrInvalidInput, RuleVolumeIDValid, "volume id %s is %d bytes long, at most %d are allowed", quoteID(id), len(id), MaxVolumeIDLen)
	case !volumeIDPattern.MatchString(id):
		return newError(ErrInvalidInput, RuleVolumeIDValid, "volume id %s must be letters, digits, '.', '_' or '-' and start with a letter or digit", quoteID(id))
	}
	return nil
}

// quoteIDMax is how many bytes of an id an error message quotes.
const quoteIDMax = 64

// quoteID renders an id for an error message or a log: Go-quoted (so control
// and format characters are escaped, never printed raw) and cut to
// quoteIDMax bytes with its full length noted, so a hostile id is never
// echoed in full.
func quoteID(id string) string {
	if len(id) <= quoteIDMax {
		return strconv.Quote(id)
	}
	cut := quoteIDMax
	for cut > 0 && !utf8.RuneStart(id[cut]) {
		cut--
	}
	return fmt.Sprintf("%s...(%d bytes)", strconv.Quote(id[:cut]), len(id))
}
