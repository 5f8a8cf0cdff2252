package rbd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/volattach/volattach/adapters/storage"
	"github.com/volattach/volattach/adapters/storage/internal/command"
)

// Errors of this backend, beside the storage ones. Both wrap
// storage.ErrInvalidConfig: the cluster does not match the configuration.
var (
	// ErrPoolNotFound: the configured pool does not exist.
	ErrPoolNotFound = fmt.Errorf("%w: rbd: pool not found", storage.ErrInvalidConfig)
	// ErrAuthFailed: the cluster refused the configured user's key, or the
	// user may not use the pool.
	ErrAuthFailed = fmt.Errorf("%w: rbd: cephx authentication or permission refused", storage.ErrInvalidConfig)
)

// errno values the rbd tool exits with.
const (
	exitENOENT = 2
	exitEACCES = 13
	exitEEXIST = 17
	exitEPERM  = 1
)

// rbdCLI drives the rbd program with the cluster's configuration and the
// keyring file; no argument ever holds a key.
type rbdCLI struct {
	prog string
	base []string
	run  command.Runner
}

// do runs rbd with args after the base options and classifies a failure.
func (c *rbdCLI) do(ctx context.Context, args ...string) ([]byte, error) {
	out, err := c.run.Run(ctx, command.Cmd{Name: c.prog, Args: append(append([]string{}, c.base...), args...)})
	return out, classify(err)
}

// classify wraps a failed rbd run's error with what it means.
func classify(err error) error {
	var ce *storage.CommandError
	if err == nil || !errors.As(err, &ce) {
		return err
	}
	switch {
	case strings.Contains(ce.Stderr, "error opening pool") && ce.ExitCode == exitENOENT:
		return fmt.Errorf("%w: %w", ErrPoolNotFound, err)
	case ce.ExitCode == exitEACCES, ce.ExitCode == exitEPERM && strings.Contains(ce.Stderr, "Operation not permitted"),
		strings.Contains(ce.Stderr, "couldn't connect to the cluster"), strings.Contains(ce.Stderr, "handle_auth_bad_method"):
		return fmt.Errorf("%w: %w", ErrAuthFailed, err)
	case ce.ExitCode == exitENOENT:
		return fmt.Errorf("%w: %w", storage.ErrVolumeNotFound, err)
	}
	return err
}

// isExists reports an rbd create that found the image there.
func isExists(err error) bool {
	var ce *storage.CommandError
	return errors.As(err, &ce) && ce.ExitCode == exitEEXIST
}

// image is the part of `rbd info --format json` the backend checks.
type image struct {
	Name     string   `json:"name"`
	Size     int64    `json:"size"`
	Features []string `json:"features"`
}

// info returns the image spec's size and features; storage.ErrVolumeNotFound
// when there is no such image.
func (c *rbdCLI) info(ctx context.Context, spec string) (image, error) {
	out, err := c.do(ctx, "info", "--format", "json", spec)
	if err != nil {
		return image{}, err
	}
	var img image
	if err := json.Unmarshal(out, &img); err != nil {
		return image{}, fmt.Errorf("rbd info %s: %w", spec, err)
	}
	return img, nil
}

// create makes the image with size bytes; layeringOnly leaves out
// exclusive-lock and the features that need it.
func (c *rbdCLI) create(ctx context.Context, spec string, size int64, layeringOnly bool) error {
	args := []string{"create", "--size", strconv.FormatInt(size, 10) + "B"}
	if layeringOnly {
		args = append(args, "--image-feature", "layering")
	}
	_, err := c.do(ctx, append(args, spec)...)
	return err
}

// remove deletes the image.
func (c *rbdCLI) remove(ctx context.Context, spec string) error {
	_, err := c.do(ctx, "rm", "--no-progress", spec)
	return err
}

// list returns the pool's image names.
func (c *rbdCLI) list(ctx context.Context, pool string) ([]string, error) {
	out, err := c.do(ctx, "ls", "--format", "json", pool)
	if err != nil {
		return nil, err
	}
	var names []string
	if err := json.Unmarshal(out, &names); err != nil {
		return nil, fmt.Errorf("rbd ls %s: %w", pool, err)
	}
	return names, nil
}
