package libvirt_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/volattach/volattach/adapters/libvirt"
)

// libvirtd RPC procedure numbers (remote_protocol.x) the fake knows.
const (
	procConnectOpen           = 1
	procDomainLookupByUUID    = 24
	procAuthList              = 66
	procConnectGetLibVersion  = 157
	procEventRegisterAny      = 316
	remoteProgram             = 0x20008086
	fakeLibVersion            = 9000000
	packetHeaderLen           = 24
	replyType, statusOK       = 1, 0
	fakeSocketName            = "libvirt-sock"
	fakeInstance              = "5b0b7d5e-8c5f-4e83-9f3c-1f1b6c3f2a10"
	fakeUnansweredProcTimeout = 300 * time.Millisecond
)

// fakeLibvirtd speaks just enough of libvirtd's RPC protocol for the
// adapter to connect, and never answers the procedures in hang: a libvirtd
// that stopped answering.
type fakeLibvirtd struct {
	t    *testing.T
	path string
	ln   net.Listener
	hang map[uint32]bool

	mu       sync.Mutex
	conns    []net.Conn
	accepted int
	closed   chan int // the index of each connection the client closed
}

func newFakeLibvirtd(t *testing.T, hang ...uint32) *fakeLibvirtd {
	t.Helper()
	f := &fakeLibvirtd{t: t, path: filepath.Join(t.TempDir(), fakeSocketName), hang: map[uint32]bool{}, closed: make(chan int, 16)}
	for _, p := range hang {
		f.hang[p] = true
	}
	ln, err := net.Listen("unix", f.path)
	if err != nil {
		t.Fatal(err)
	}
	f.ln = ln
	go f.accept()
	t.Cleanup(func() {
		ln.Close()
		f.dropAll()
	})
	return f
}

func (f *fakeLibvirtd) accept() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.mu.Lock()
		idx := f.accepted
		f.accepted++
		f.conns = append(f.conns, c)
		f.mu.Unlock()
		go f.serve(idx, c)
	}
}

// dropAll closes every connection, as a libvirtd that exits does.
func (f *fakeLibvirtd) dropAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		c.Close()
	}
	f.conns = nil
}

func (f *fakeLibvirtd) connections() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.accepted
}

func (f *fakeLibvirtd) serve(idx int, c net.Conn) {
	callbackID := int32(0)
	for {
		var n uint32
		if err := binary.Read(c, binary.BigEndian, &n); err != nil {
			// A client that closes while an answer it never read is
			// still queued resets the socket instead of ending it (a
			// unix socket's peer then reads ECONNRESET): closed either way.
			f.peerClosed(idx, err)
			return
		}
		pkt := make([]byte, n-4)
		if _, err := io.ReadFull(c, pkt); err != nil {
			f.peerClosed(idx, err)
			return
		}
		proc := binary.BigEndian.Uint32(pkt[8:12])
		serial := binary.BigEndian.Uint32(pkt[16:20])
		if f.hang[proc] {
			continue
		}
		var payload []byte
		switch proc {
		case procAuthList:
			payload = binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 1), 0) // [AUTH_NONE]
		case procEventRegisterAny:
			callbackID++
			payload = binary.BigEndian.AppendUint32(nil, uint32(callbackID))
		case procConnectGetLibVersion:
			payload = binary.BigEndian.AppendUint64(nil, fakeLibVersion)
		}
		reply := binary.BigEndian.AppendUint32(nil, uint32(4+packetHeaderLen+len(payload)))
		for _, v := range []uint32{remoteProgram, 1, proc, replyType, serial, statusOK} {
			reply = binary.BigEndian.AppendUint32(reply, v)
		}
		if _, err := c.Write(append(reply, payload...)); err != nil {
			// The client may close between its request and our answer
			// (the adapter's polite close after a timed-out call): the
			// answer then meets a closed socket.
			f.peerClosed(idx, err)
			return
		}
	}
}

// peerClosed records connection idx as closed by the client when err says
// the socket's peer went away (EOF, a reset, a broken pipe).
func (f *fakeLibvirtd) peerClosed(idx int, err error) {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		f.closed <- idx
	}
}

// waitClosed waits until the client has closed connection idx.
func (f *fakeLibvirtd) waitClosed(idx int) {
	f.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case got := <-f.closed:
			if got == idx {
				return
			}
		case <-deadline:
			f.t.Fatalf("the adapter did not close connection %d", idx)
		}
	}
}

func fakeAdapter(t *testing.T, f *fakeLibvirtd, timeout time.Duration) *libvirt.Adapter {
	t.Helper()
	a, err := libvirt.New(libvirt.WithURI("qemu+unix:///system?socket="+f.path), libvirt.WithCallTimeout(timeout),
		libvirt.WithInitiatorName("iqn.2026-01.io.volattach:fake"), libvirt.WithLogger(testLog(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func TestPingThroughFakeLibvirtd(t *testing.T) {
	f := newFakeLibvirtd(t)
	a := fakeAdapter(t, f, 5*time.Second)
	v, err := a.Ping(context.Background())
	if err != nil || v != "9.0.0" {
		t.Fatalf("Ping = %q, %v", v, err)
	}
}

// TestCallTimeoutDropsConnection: a call libvirtd never answers ends with
// ErrCallTimeout, the adapter closes that connection (so a late answer can
// reach no later call), and the next call works on a new connection.
func TestCallTimeoutDropsConnection(t *testing.T) {
	f := newFakeLibvirtd(t, procDomainLookupByUUID)
	a := fakeAdapter(t, f, fakeUnansweredProcTimeout)
	ctx := context.Background()
	if _, err := a.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	_, err := a.PowerState(ctx, fakeInstance)
	if !errors.Is(err, libvirt.ErrCallTimeout) {
		t.Fatalf("PowerState on a libvirtd that does not answer: %v, want ErrCallTimeout", err)
	}
	f.waitClosed(0)
	if _, err := a.Ping(ctx); err != nil {
		t.Fatalf("Ping after the timeout: %v", err)
	}
	if n := f.connections(); n != 2 {
		t.Fatalf("%d connections, want 2 (the dropped one and a new one)", n)
	}
}

// TestConnectTimeout: a libvirtd that accepts but never answers the
// handshake bounds the connect, and the socket is closed.
func TestConnectTimeout(t *testing.T) {
	f := newFakeLibvirtd(t, procAuthList)
	a := fakeAdapter(t, f, fakeUnansweredProcTimeout)
	if _, err := a.Ping(context.Background()); !errors.Is(err, libvirt.ErrCallTimeout) {
		t.Fatalf("Ping: %v, want ErrCallTimeout", err)
	}
	f.waitClosed(0)
}

// TestCancelledCallKeepsConnection: a caller that gives up gets its own
// context's error at once; the connection is not dropped for it.
func TestCancelledCallKeepsConnection(t *testing.T) {
	f := newFakeLibvirtd(t, procDomainLookupByUUID)
	a := fakeAdapter(t, f, time.Minute)
	if _, err := a.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := a.PowerState(ctx, fakeInstance)
		errc <- err
	}()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("PowerState with a cancelled context: %v", err)
	}
	if _, err := a.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := f.connections(); n != 1 {
		t.Fatalf("%d connections, want the first one kept", n)
	}
}

// TestReconnectAfterLibvirtdWentAway: when libvirtd closes the connection
// (it exited), the next call connects again.
func TestReconnectAfterLibvirtdWentAway(t *testing.T) {
	f := newFakeLibvirtd(t)
	a := fakeAdapter(t, f, 5*time.Second)
	ctx := context.Background()
	if _, err := a.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	f.dropAll()
	if _, err := a.Ping(ctx); err != nil {
		t.Fatalf("Ping after libvirtd went away: %v", err)
	}
	if n := f.connections(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
}

func TestClosedAdapter(t *testing.T) {
	f := newFakeLibvirtd(t)
	a := fakeAdapter(t, f, 5*time.Second)
	if _, err := a.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	a.Close()
	if _, err := a.Ping(context.Background()); !errors.Is(err, libvirt.ErrClosed) {
		t.Fatalf("Ping after Close: %v", err)
	}
}
