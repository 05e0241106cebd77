package peercred_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/peercred/peercred"
)

// TestSystemdUnitFromCgroup: the unit and slice a cgroup v2 path implies,
// as systemd names them; a user's units only beneath user@UID.service.
func TestSystemdUnitFromCgroup(t *testing.T) {
	type units struct{ Unit, Slice, UserUnit, UserSlice string }
	tests := []struct {
		cgroup string
		want   units
	}{
		{"/system.slice/foo.service", units{"foo.service", "system.slice", "", ""}},
		{"/system.slice/foo.service/child", units{"foo.service", "system.slice", "", ""}},
		{"/system.slice/app-test.service", units{"app-test.service", "system.slice", "", ""}},
		{"/system.slice/getty@tty1.service", units{"getty@tty1.service", "system.slice", "", ""}},
		{"/init.scope", units{"init.scope", "-.slice", "", ""}},
		{"/", units{"", "-.slice", "", ""}},
		{"/system.slice", units{"", "system.slice", "", ""}},
		{"/machine.slice/machine-qemu\\x2d1.scope", units{"machine-qemu\\x2d1.scope", "machine.slice", "", ""}},
		{"/user.slice/user-1000.slice/user@1000.service/app.slice/x.scope",
			units{"user@1000.service", "user-1000.slice", "x.scope", "app.slice"}},
		{"/user.slice/user-1000.slice/user@1000.service/init.scope",
			units{"user@1000.service", "user-1000.slice", "init.scope", "-.slice"}},
		{"/user.slice/user-1000.slice/session-3.scope", units{"session-3.scope", "user-1000.slice", "", ""}},
		// Not a user manager: what follows is not a user's unit.
		{"/system.slice/user@x.service/app.slice/x.scope", units{"user@x.service", "system.slice", "", ""}},
		// Not unit names: no unit, whatever follows.
		{"/docker/0123/foo.service", units{"", "-.slice", "", ""}},
		{"/system.slice/.service", units{"", "system.slice", "", ""}},
		{"/system.slice/a b.service", units{"", "system.slice", "", ""}},
		{"/system.slice/a@b@c.service", units{"", "system.slice", "", ""}},
		{"//system.slice//foo.service", units{"foo.service", "system.slice", "", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.cgroup, func(t *testing.T) {
			var got units
			got.Unit, got.Slice, got.UserUnit, got.UserSlice = peercred.SystemdUnit(tt.cgroup)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("SystemdUnit(%q) (-want +got):\n%s", tt.cgroup, diff)
			}
		})
	}
}

// TestProcessStringQuotesWhatThePeerChose: the executable's path and the
// cgroup, which the peer may fill with controls, are quoted in a log line.
func TestProcessStringQuotesWhatThePeerChose(t *testing.T) {
	p := &peercred.Process{PID: 42, StartTime: 7, Exe: peercred.Executable{Path: "/tmp/x\nlevel=ERROR"},
		Cgroup: "/system.slice/foo.service", Unit: "foo.service", Slice: "system.slice"}
	want := `pid=42 start=7 exe="/tmp/x\nlevel=ERROR" unit=foo.service cgroup="/system.slice/foo.service"`
	if got := p.String(); got != want {
		t.Errorf("String() = %s, want %s", got, want)
	}
}
