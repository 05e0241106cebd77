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

// TestFdinfoPid: the Pid line of a pidfd's fdinfo; -1 for a process that
// is gone; none is an error.
func TestFdinfoPid(t *testing.T) {
	tests := []struct {
		in   string
		want int
		err  bool
	}{
		{in: "pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1057\nPid:\t4121\nNSpid:\t4121\n", want: 4121},
		{in: "pos:\t0\nPid:\t-1\nNSpid:\t-1\n", want: -1},
		{in: "pos:\t0\nflags:\t02000002\n", err: true},
		{in: "Pid:\tx\n", err: true},
	}
	for _, tt := range tests {
		got, err := fdinfoPid([]byte(tt.in))
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("fdinfoPid(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}
