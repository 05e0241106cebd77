package peercred

import "testing"

// TestParseCgroupV2: the "0::" line of /proc/PID/cgroup, on a cgroup v2
// host and a hybrid one; none is an error, never "/".
func TestParseCgroupV2(t *testing.T) {
	tests := []struct {
		in, want string
		err      bool
	}{
		{in: "0::/system.slice/foo.service\n", want: "/system.slice/foo.service"},
		{in: "9:name=systemd:/system.slice/foo.service\n4:memory:/x\n0::/system.slice/foo.service\n", want: "/system.slice/foo.service"},
		{in: "0::/\n", want: "/"},
		{in: "0::/a b\n", want: "/a b"},
		{in: "9:name=systemd:/\n", err: true},
		{in: "0::\n", err: true},
		{in: "0::relative\n", err: true},
		{in: "", err: true},
	}
	for _, tt := range tests {
		got, err := parseCgroupV2([]byte(tt.in))
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("parseCgroupV2(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}
