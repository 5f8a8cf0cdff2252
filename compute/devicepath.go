package compute

import (
	"regexp"
	"strings"
)

// DevicePathPattern is upstream's device path pattern, verbatim (nova/block_device.py
// match_device): an optional /dev/ prefix of at most x, one letter and d,
// then the letters naming the disk, then an optional partition number.
const DevicePathPattern = `(^/dev/x{0,1}[a-z]{0,1}d{0,1})([a-z]+)[0-9]*$`

var devicePathRE = regexp.MustCompile(DevicePathPattern)

// MatchDevice splits a device path into its prefix ("/dev/vd") and its
// letters ("b") as upstream match_device does; ok is false when path does
// not match the pattern. As in Python, whose `$` also matches before a
// final newline, one trailing "\n" is allowed ("/dev/vdb\n" matches): the
// requested name is only validated, never used (DeviceNamer.Next).
func MatchDevice(path string) (prefix, letters string, ok bool) {
	m := devicePathRE.FindStringSubmatch(strings.TrimSuffix(path, "\n"))
	if m == nil {
		return "", "", false
	}
	return m[1], m[2], true
}

// ValidateDevicePath returns an InvalidDevicePath error (400) when a
// requested device path does not match DevicePathPattern (upstream
// API.attach_volume: "if device and not match_device(device)"). An empty
// path means "choose one" and is valid.
func ValidateDevicePath(path string) error {
	if path == "" {
		return nil
	}
	if _, _, ok := MatchDevice(path); !ok {
		return Raise(ErrInvalidDevicePath, "the supplied device path (%s) is invalid", path)
	}
	return nil
}
