package chaos

import (
	"bytes"
	"fmt"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
)

// Build compiles the main packages pkgs in one go build (they share its
// work) into dir and returns the binaries' paths, in order; see BuildOne.
func Build(dir string, pkgs ...string) ([]string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	var stderr bytes.Buffer
	// No symbol table or DWARF: linking is most of the build, and the
	// processes are never debugged from the binary.
	cmd := exec.Command(goBin, append([]string{"build", "-ldflags=-s -w", "-o", dir + string(filepath.Separator)}, pkgs...)...)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("chaos: go build %s: %w: %s", strings.Join(pkgs, " "), err, strings.TrimSpace(stderr.String()))
	}
	var out []string
	for _, p := range pkgs {
		out = append(out, filepath.Join(dir, path.Base(p)))
	}
	return out, nil
}

// BuildOne compiles the main package pkg (an import path of this module, for
// example ModulePath+"/cmd/volattachd") into dir and returns the binary's
// path. The processes of a run are built without the race detector even
// when the test is not: three etcd members, agents and API servers under
// it would not fit on a small machine beside the workload.
func BuildOne(dir, pkg string) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	out := filepath.Join(dir, path.Base(pkg))
	var stderr bytes.Buffer
	cmd := exec.Command(goBin, "build", "-o", out, pkg)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("chaos: go build %s: %w: %s", pkg, err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// ModulePath is the import path of this module.
const ModulePath = "github.com/volattach/volattach"
