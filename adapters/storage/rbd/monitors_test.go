package rbd_test

import (
	"slices"
	"testing"

	"github.com/volattach/volattach/adapters/storage/rbd"
)

func TestParseMonHost(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []string
	}{
		{"v2:127.0.0.1:3300", []string{"127.0.0.1:3300"}},
		{"127.0.0.1", []string{"127.0.0.1:3300"}},
		{"10.0.0.1:6789,10.0.0.2:6789", []string{"10.0.0.1:6789", "10.0.0.2:6789"}},
		{"[v2:10.0.0.1:3300/0,v1:10.0.0.1:6789/0] [v2:10.0.0.2:3300,v1:10.0.0.2:6789]", []string{"10.0.0.1:3300", "10.0.0.2:3300"}},
		{"v1:10.0.0.1:6789", []string{"10.0.0.1:6789"}},
		{"[::1]:3300", []string{"[::1]:3300"}},
	} {
		got, err := rbd.ParseMonHost(tt.in)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("ParseMonHost(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", " , ", "v2:", "[]"} {
		if got, err := rbd.ParseMonHost(bad); err == nil {
			t.Errorf("ParseMonHost(%q) = %v, want an error", bad, got)
		}
	}
}
