package compute

import (
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The request fields upstream's API schema checks before anything else
// (nova/api/openstack/compute/schemas/volume_attachments.py and
// nova/api/validation/parameter_types.py), and the ids a record can have.
const (
	// MaxTagLength is upstream's tag.MAX_TAG_LENGTH.
	MaxTagLength = 60
	// MaxIDLength bounds an instance or volume id: longer ones name no
	// record (uuids have 36 characters; upstream's columns hold 36 or 255).
	MaxIDLength = 255
)

// AttachDiskBuses are the buses a volume may be attached on: the ones the
// hypervisor adapter hot-plugs (adapters/libvirt), a subset of upstream's
// fields.DiskBus. Nova's attach API takes no disk_bus at all.
var AttachDiskBuses = []string{BusVirtio, BusSCSI}

// AttachDeviceTypes are the device types a volume may be attached as
// (upstream BlockDeviceType values a volume disk uses).
var AttachDeviceTypes = []string{DeviceTypeDisk, DeviceTypeLUN}

// ErrValidationError is upstream ValidationError: a request field breaks
// the API schema (400). Nothing is read or written before it is checked.
var ErrValidationError = &Exception{Name: "ValidationError", Parent: ErrInvalid, Code: 400}

// validate checks the attach request's fields as upstream's schema does,
// before the instance is even read: a tag of at most 60 characters without
// ',' or '/' (parameter_types.tag), and a disk bus and device type from
// AttachDiskBuses and AttachDeviceTypes.
func (req AttachRequest) validate() error {
	if req.Tag != "" {
		if !utf8.ValidString(req.Tag) || utf8.RuneCountInString(req.Tag) > MaxTagLength {
			return Raise(ErrValidationError, "invalid input for field tag: longer than %d characters", MaxTagLength)
		}
		if strings.ContainsAny(req.Tag, ",/") {
			return Raise(ErrValidationError, "invalid input for field tag: %q holds ',' or '/'", req.Tag)
		}
	}
	if req.DiskBus != "" && !oneOf(req.DiskBus, AttachDiskBuses) {
		return Raise(ErrValidationError, "invalid input for field disk_bus: %s is not one of %v", shortID(req.DiskBus), AttachDiskBuses)
	}
	if req.DeviceType != "" && !oneOf(req.DeviceType, AttachDeviceTypes) {
		return Raise(ErrValidationError, "invalid input for field device_type: %s is not one of %v", shortID(req.DeviceType), AttachDeviceTypes)
	}
	return nil
}

func oneOf(s string, set []string) bool { return slices.Contains(set, s) }

// recordID reports whether id can name a stored record: not empty, no '/'
// (store keys nest on it), at most MaxIDLength bytes. Any other id names
// nothing, and a lookup answers NotFound without asking the store.
func recordID(id string) bool {
	return id != "" && len(id) <= MaxIDLength && !strings.Contains(id, "/")
}

// shortID renders an id for a message: as it is when short and printable,
// otherwise quoted and cut to 64 bytes with its length said, so a hostile
// id is never echoed in full nor carries control characters into a log.
func shortID(id string) string {
	const keep = 64
	if len(id) <= keep {
		if id != "" && utf8.ValidString(id) && !strings.ContainsFunc(id, func(r rune) bool { return !unicode.IsPrint(r) }) {
			return id
		}
		return strconv.Quote(id)
	}
	return strconv.Quote(strings.ToValidUTF8(id[:keep], "")) + "...(" + strconv.Itoa(len(id)) + " bytes)"
}
