package file

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/volattach/volattach/adapters/storage/internal/command"
	"github.com/volattach/volattach/adapters/testenv"
	"github.com/volattach/volattach/volume"
)

// qemu-img's LUKS create fails now and then on a busy host with "Unable to
// get accurate CPU usage" (its PBKDF2 calibration measured no CPU time):
// the create is made again, and any other failure is returned at once.
func TestCreateLUKSRetriesAFailedCalibration(t *testing.T) {
	testenv.NeedCommand(t, "qemu-img")
	dir := t.TempDir()
	count := filepath.Join(dir, "calls")
	// A qemu-img that fails its first create as the real one does, then
	// runs the real one.
	fake := filepath.Join(dir, "qemu-img")
	script := "#!/bin/sh\necho x >> " + count + "\nif [ $(wc -l < " + count + ") -eq 1 ]; then\n" +
		"  echo \"qemu-img: $9: Unable to get accurate CPU usage\" >&2; exit 1\nfi\nexec qemu-img \"$@\"\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	q := &qemuImg{prog: fake, run: command.Runner{}}
	img := filepath.Join(dir, "v.luks")
	if err := q.createLUKS(ctx, img, 1<<20, &volume.Encryption{}, "passphrase"); err != nil {
		t.Fatalf("create after one failed calibration: %v", err)
	}
	if n := lines(t, count); n != 2 {
		t.Fatalf("qemu-img ran %d times, want 2", n)
	}
	info, err := q.infoLUKS(ctx, img, "passphrase")
	if err != nil || info.VirtualSize != 1<<20 {
		t.Fatalf("the image made on the retry: %+v %v", info, err)
	}

	// Any other failure is not retried.
	if err := q.createLUKS(ctx, filepath.Join(dir, "no-such-dir", "v.luks"), 1<<20, &volume.Encryption{}, "passphrase"); err == nil {
		t.Fatal("a create into a missing directory succeeded")
	}
	if n := lines(t, count); n != 4 {
		t.Fatalf("qemu-img ran %d times in all, want 4: two creates, one info, one failed create (a real failure is not retried)", n)
	}
}

func lines(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}
