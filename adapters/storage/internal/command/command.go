// Package command runs the external tools the storage backends drive
// (qemu-img, tgtadm, qemu-nbd) with a context, a timeout, captured stderr and
// secrets masked in logs and errors.
package command

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/volattach/volattach/adapters/storage"
)

// DefaultTimeout bounds one command when the Runner sets none: a wedged
// daemon must not hang a caller that passed context.Background().
const DefaultTimeout = 2 * time.Minute

// mask replaces a secret in logs and errors.
const mask = "***"

// Runner runs commands.
type Runner struct {
	// Log receives one debug entry per command (secrets masked).
	Log logrus.FieldLogger
	// Timeout bounds each command; zero means DefaultTimeout.
	Timeout time.Duration
}

// Cmd is one command to run.
type Cmd struct {
	// Name is the program (looked up on PATH unless it has a slash).
	Name string
	// Args are its arguments.
	Args []string
	// Secrets are argument values to mask wherever the command is shown.
	Secrets []string
}

// Run runs c and returns its standard output. A failure is a
// *storage.CommandError carrying the trimmed stderr.
func (r Runner) Run(ctx context.Context, c Cmd) ([]byte, error) {
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	cmd := exec.CommandContext(ctx, c.Name, c.Args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// A daemonising child (qemu-nbd --fork) could keep our pipes open; do
	// not wait for it once the command itself has exited.
	cmd.WaitDelay = time.Second
	start := time.Now()
	err := cmd.Run()
	if r.Log != nil {
		r.Log.WithFields(logrus.Fields{
			"command":  c.Name,
			"args":     strings.Join(c.masked(), " "),
			"duration": time.Since(start).Round(time.Microsecond).String(),
			"ok":       err == nil,
		}).Debug("storage command")
	}
	if err == nil {
		return stdout.Bytes(), nil
	}
	ce := &storage.CommandError{
		Name:     c.Name,
		Args:     c.masked(),
		ExitCode: -1,
		Stderr:   c.maskString(strings.TrimSpace(stderr.String())),
		Err:      err,
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		ce.ExitCode = ee.ExitCode()
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		ce.Err = errors.Join(err, ctxErr)
	}
	return stdout.Bytes(), ce
}

// masked returns the arguments with every secret replaced.
func (c Cmd) masked() []string {
	out := make([]string, len(c.Args))
	for i, a := range c.Args {
		out[i] = c.maskString(a)
	}
	return out
}

// maskString replaces every secret inside s.
func (c Cmd) maskString(s string) string {
	for _, sec := range c.Secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, mask)
		}
	}
	return s
}
