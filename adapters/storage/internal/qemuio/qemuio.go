// Package qemuio drives qemu-io for the backends' tests: QEMU's own block
// layer (and its iSCSI and NBD initiators) writes a pattern through an export
// and reads it back, as a guest's disk would.
package qemuio

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// Image names what qemu-io opens: for example {"-f", "qcow2", path},
// {"-f", "raw", "nbd://127.0.0.1:10809/name"} or {"--image-opts",
// "driver=iscsi,..."}.
type Image []string

// timeout bounds one qemu-io run, so a wedged export fails the test instead
// of hanging it.
const timeout = time.Minute

// Run runs qemu-io on img with one -c per command and returns its combined
// output. It fails when qemu-io exits non-zero or reports a pattern mismatch.
func Run(ctx context.Context, img Image, cmds ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	args := append([]string{}, img...)
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	out, err := exec.CommandContext(ctx, "qemu-io", args...).CombinedOutput()
	text := string(out)
	if err != nil {
		return text, fmt.Errorf("qemu-io %s: %w: %s", strings.Join(cmds, "; "), err, strings.TrimSpace(text))
	}
	if strings.Contains(text, "Pattern verification failed") {
		return text, fmt.Errorf("qemu-io %s: pattern verification failed: %s", strings.Join(cmds, "; "), strings.TrimSpace(text))
	}
	return text, nil
}

// WriteRead writes pattern to length bytes at offset, then, in a second
// qemu-io run (a new connection), reads them back and checks the pattern.
func WriteRead(ctx context.Context, img Image, pattern byte, offset, length int64) error {
	w := fmt.Sprintf("write -P 0x%02x %d %d", pattern, offset, length)
	out, err := Run(ctx, img, w)
	if err != nil {
		return err
	}
	if want := fmt.Sprintf("wrote %d/%d bytes at offset %d", length, length, offset); !strings.Contains(out, want) {
		return fmt.Errorf("qemu-io %s: output lacks %q: %s", w, want, out)
	}
	r := fmt.Sprintf("read -P 0x%02x %d %d", pattern, offset, length)
	out, err = Run(ctx, img, r)
	if err != nil {
		return err
	}
	if want := fmt.Sprintf("read %d/%d bytes at offset %d", length, length, offset); !strings.Contains(out, want) {
		return fmt.Errorf("qemu-io %s: output lacks %q: %s", r, want, out)
	}
	return nil
}
