package iscsi

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/volattach/volattach/adapters/storage"
	"github.com/volattach/volattach/adapters/storage/internal/command"
)

// tgtadm reports every failure with exit status 22; the message on stderr
// tells them apart. These are tgtd's own texts (tgtadm_strerror).
const (
	msgTargetExists  = "this target already exists"
	msgNoTarget      = "can't find the target"
	msgLUNExists     = "this logical unit number already exists"
	msgAccountExists = "this account already exists"
	msgNoAccount     = "can't find the account"
	msgACLExists     = "this access control rule already exists"
	msgNoACL         = "this access control rule does not exist"
)

// tgtadm drives tgtd through the tgtadm program.
type tgtadm struct {
	prog string
	run  command.Runner
	// socket is tgtd's management socket, for the one request that
	// carries a secret (tgtd_ipc.go); "" is tgtadm's default.
	socket string
}

// do runs `tgtadm --lld iscsi ARGS...`, masking secrets.
func (t *tgtadm) do(ctx context.Context, secrets []string, args ...string) error {
	_, err := t.run.Run(ctx, command.Cmd{Name: t.prog, Args: append([]string{"--lld", "iscsi"}, args...), Secrets: secrets})
	return err
}

// targets lists tgtd's targets.
func (t *tgtadm) targets(ctx context.Context) ([]target, error) {
	out, err := t.run.Run(ctx, command.Cmd{Name: t.prog, Args: []string{"--lld", "iscsi", "--op", "show", "--mode", "target"}})
	if err != nil {
		return nil, err
	}
	return parseTargets(string(out))
}

// accounts lists tgtd's account user names.
func (t *tgtadm) accounts(ctx context.Context) ([]string, error) {
	out, err := t.run.Run(ctx, command.Cmd{Name: t.prog, Args: []string{"--lld", "iscsi", "--op", "show", "--mode", "account"}})
	if err != nil {
		return nil, err
	}
	return parseAccounts(string(out)), nil
}

// findTarget returns the target named iqn, or nil.
func (t *tgtadm) findTarget(ctx context.Context, iqn string) (*target, []target, error) {
	all, err := t.targets(ctx)
	if err != nil {
		return nil, nil, err
	}
	for i := range all {
		if all[i].IQN == iqn {
			return &all[i], all, nil
		}
	}
	return nil, all, nil
}

// tid renders a target id argument.
func tid(id int) string { return strconv.Itoa(id) }

// failedWith reports whether err is a tgtadm failure with message msg.
func failedWith(err error, msg string) bool {
	var ce *storage.CommandError
	return errors.As(err, &ce) && strings.Contains(ce.Stderr, msg)
}
