package iscsi

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/volattach/volattach/adapters/storage/internal/command"
)

// A CHAP account is created through tgtd's management socket, the way
// tgtadm itself talks to tgtd, and not by running tgtadm: tgtadm takes the
// password only as --password on its command line, which every local user
// can read in /proc/PID/cmdline while it runs (review M1). Upstream's tgt
// driver writes the secret into a root-only target file and runs tgt-admin,
// but tgt-admin then runs tgtadm with --password=... itself; the socket is
// the one way to hand tgtd a secret that no process listing shows. Every
// other tgtd change still goes through tgtadm (no secret in them).

// DefaultTgtdSocket is tgtd's management socket for control port 0
// (tgtadm's default, TGT_IPC_NAMESPACE ".0").
const DefaultTgtdSocket = "/var/run/tgtd/socket.0"

// tgtdSocket returns the management socket tgtadm would use: the one the
// TGT_IPC_SOCKET environment variable names (with tgtadm's ".0" suffix),
// else DefaultTgtdSocket.
func tgtdSocket() string {
	if p := os.Getenv("TGT_IPC_SOCKET"); p != "" {
		return p + ".0"
	}
	return DefaultTgtdSocket
}

// Values of tgt's usr/tgtadm.h and usr/tgtadm_error.h (stable since tgt
// 1.0.58; Debian 12 ships 1.0.85).
const (
	tgtModeAccount   = 7  // MODE_ACCOUNT
	tgtOpNew         = 0  // OP_NEW
	tgtErrUserExists = 14 // TGTADM_USER_EXIST
	tgtLLDNameLen    = 64 // TGT_LLD_NAME_LEN
	tgtReqLen        = 120
	tgtRspLen        = 8
)

// errAccountExists: tgtd has an account of that user name already.
var errAccountExists = errors.New("iscsi: tgtd: " + msgAccountExists)

// tgtdRequest encodes a struct tgtadm_req (host byte order, as tgtadm
// sends it: little-endian on every platform tgtd runs on here) followed by
// its NUL-terminated "key=value,..." parameters.
func tgtdRequest(mode, op uint32, params string) []byte {
	body := append([]byte(params), 0)
	b := make([]byte, tgtReqLen, tgtReqLen+len(body))
	le := binary.LittleEndian
	le.PutUint32(b[0:], mode)
	le.PutUint32(b[4:], op)
	copy(b[8:8+tgtLLDNameLen-1], "iscsi")
	le.PutUint32(b[72:], uint32(tgtReqLen+len(body))) // len
	le.PutUint32(b[76:], 0)                           // tid
	// sid, lun (uint64 at 80, 88), cid, host_no, device_type, ac_dir
	// (ACCOUNT_TYPE_INCOMING), pack and force are all zero.
	return append(b, body...)
}

// newAccount creates the incoming CHAP account user with password secret
// through tgtd's management socket. An account already there is
// errAccountExists. Errors never carry the secret.
func (t *tgtadm) newAccount(ctx context.Context, user, secret string) error {
	timeout := t.run.Timeout
	if timeout <= 0 {
		timeout = command.DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	path := t.socket
	if path == "" {
		path = tgtdSocket()
	}
	start := time.Now()
	err := tgtdCall(ctx, path, tgtdRequest(tgtModeAccount, tgtOpNew, "user="+user+",password="+secret))
	if t.run.Log != nil {
		t.run.Log.WithFields(map[string]any{
			"command": "tgtd " + path, "args": "--op new --mode account --user " + user,
			"duration": time.Since(start).String(), "ok": err == nil || errors.Is(err, errAccountExists),
		}).Debug("storage command")
	}
	return err
}

// tgtdCall sends one request to tgtd's management socket at path and
// reads its answer.
func tgtdCall(ctx context.Context, path string, req []byte) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return fmt.Errorf("iscsi: tgtd management socket: %w", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	if _, err := conn.Write(req); err != nil {
		return fmt.Errorf("iscsi: tgtd management socket: send: %w", err)
	}
	var rsp [tgtRspLen]byte
	if _, err := io.ReadFull(conn, rsp[:]); err != nil {
		return fmt.Errorf("iscsi: tgtd management socket: answer: %w", err)
	}
	code := binary.LittleEndian.Uint32(rsp[0:])
	switch code {
	case 0:
		return nil
	case tgtErrUserExists:
		return errAccountExists
	}
	return fmt.Errorf("iscsi: tgtd refused the account (tgtadm error %d)", code)
}
