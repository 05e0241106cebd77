package peercred

import "testing"

// TestParseCgroups: the "0::" and "name=systemd" lines of /proc/PID/cgroup,
// on a cgroup v2 host and a hybrid one; no v2 line is an error, never "/".
func TestParseCgroups(t *testing.T) {
	tests := []struct {
		in, v2, systemd string
		err             bool
	}{
		{in: "0::/system.slice/foo.service\n", v2: "/system.slice/foo.service"},
		{in: "9:name=systemd:/system.slice/foo.service\n4:memory:/x\n0::/system.slice/foo.service\n",
			v2: "/system.slice/foo.service", systemd: "/system.slice/foo.service"},
		{in: "9:name=systemd:/system.slice/a.service\n0::/\n", v2: "/", systemd: "/system.slice/a.service"},
		{in: "0::/\n", v2: "/"},
		{in: "0::/a b\n", v2: "/a b"},
		{in: "0::/a:b\n", v2: "/a:b"},
		{in: "9:name=systemd:/\n", err: true},
		{in: "0::\n", err: true},
		{in: "0::relative\n", err: true},
		{in: "0::/a\n0::/b\n", err: true},
		{in: "1:name=systemd:/a\n2:name=systemd:/b\n0::/\n", err: true},
		{in: "garbage\n0::/\n", err: true},
		{in: "", err: true},
	}
	for _, tt := range tests {
		v2, systemd, err := parseCgroups([]byte(tt.in))
		if (err != nil) != tt.err || v2 != tt.v2 || systemd != tt.systemd {
			t.Errorf("parseCgroups(%q) = %q, %q, %v; want %q, %q, error %v", tt.in, v2, systemd, err, tt.v2, tt.systemd, tt.err)
		}
	}
}
