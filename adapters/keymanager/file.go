package keymanager

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// DefaultDir is where File keeps keys when given no directory.
const DefaultDir = "/var/lib/volattach/keys"

// File keeps each key in a file of its own (mode 0600) in a directory only
// its owner may enter (0700), written atomically: the default Manager for
// a single host, or hosts sharing the directory. It is safe for concurrent
// use, also across processes.
type File struct {
	dir string
}

var _ Manager = (*File)(nil)

// NewFile returns a File keeping keys in dir (DefaultDir when empty),
// creating it mode 0700 when missing. An existing dir that group or others
// can read or enter is refused.
func NewFile(dir string) (*File, error) {
	if dir == "" {
		dir = DefaultDir
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("keymanager: %w", err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("keymanager: %w", err)
	}
	st, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("keymanager: %w", err)
	}
	if !st.IsDir() || st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("keymanager: %s must be a directory only its owner can use (mode %v)", abs, st.Mode().Perm())
	}
	return &File{dir: abs}, nil
}

// Dir returns the directory holding the keys.
func (f *File) Dir() string { return f.dir }

func (f *File) path(id string) (string, error) {
	if err := ValidateKeyID(id); err != nil {
		return "", err
	}
	return filepath.Join(f.dir, id+".key"), nil
}

// EnsureKey returns the key named id, making and storing a random one when
// there is none; of concurrent makers the first to store wins.
func (f *File) EnsureKey(ctx context.Context, id string) ([]byte, error) {
	if k, err := f.Key(ctx, id); !errors.Is(err, ErrKeyNotFound) {
		return k, err
	}
	p, _ := f.path(id) // checked by Key
	key := make([]byte, KeyBytes)
	rand.Read(key) // never fails (crypto/rand, Go 1.24+)
	tmp, err := os.CreateTemp(f.dir, "."+id+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("keymanager: store key %s: %w", id, err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(key)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		// link(2) never replaces: a key another caller stored first stays.
		if err = os.Link(tmp.Name(), p); errors.Is(err, fs.ErrExist) {
			return f.Key(ctx, id)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("keymanager: store key %s: %w", id, err)
	}
	if d, err := os.Open(f.dir); err == nil {
		d.Sync()
		d.Close()
	}
	return key, nil
}

// Key reads the key named id.
func (f *File) Key(ctx context.Context, id string) ([]byte, error) {
	p, err := f.path(id)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	key, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrKeyNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("keymanager: read key %s: %w", id, err)
	}
	if len(key) != KeyBytes {
		return nil, fmt.Errorf("keymanager: key %s is damaged (%d bytes, want %d)", id, len(key), KeyBytes)
	}
	return key, nil
}

// DeleteKey removes the key named id; none there is success.
func (f *File) DeleteKey(ctx context.Context, id string) error {
	p, err := f.path(id)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("keymanager: delete key %s: %w", id, err)
	}
	return nil
}
