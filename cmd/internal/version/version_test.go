package version

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestFormat(t *testing.T) {
	platform := " " + runtime.GOOS + "/" + runtime.GOARCH
	tests := []struct {
		name string
		bi   *debug.BuildInfo
		want string
	}{
		{
			name: "no build information",
			want: "cmd (unknown), " + runtime.Version() + platform,
		},
		{
			name: "a tagged version installed with go install",
			bi:   &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "m", Version: "v0.1.0"}},
			want: "cmd v0.1.0, go1.26.8" + platform,
		},
		{
			name: "built in a clean checkout",
			bi: &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
				{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "1232e88c"}, {Key: "vcs.modified", Value: "false"},
			}},
			want: "cmd (devel), commit 1232e88c, go1.26.8" + platform,
		},
		{
			name: "built in a checkout with changes",
			bi: &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20261201174147-1232e88c0f3a+dirty"}, Settings: []debug.BuildSetting{
				{Key: "vcs.revision", Value: "1232e88c"}, {Key: "vcs.modified", Value: "true"},
			}},
			want: "cmd v0.0.0-20261201174147-1232e88c0f3a+dirty, commit 1232e88c (modified), go1.26.8" + platform,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := format("cmd", tt.bi); got != tt.want {
				t.Errorf("format:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestString(t *testing.T) {
	got := String("cmd")
	if !strings.HasPrefix(got, "cmd ") || !strings.Contains(got, runtime.Version()) || strings.Contains(got, "\n") {
		t.Errorf("String(%q) = %q, want one line naming the command and %s", "cmd", got, runtime.Version())
	}
}
