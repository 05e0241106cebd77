package privsep

import (
	"os"
	"strings"
	"testing"
)

func TestSpareGID(t *testing.T) {
	b, err := os.ReadFile("/proc/self/gid_map")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(strings.Fields(string(b)), " ") != "0 0 4294967295" {
		t.Skipf("not the initial user namespace's GID map: %q", b)
	}
	for _, tc := range []struct {
		gid    uint32
		groups []uint32
		want   uint32
	}{
		{65534, nil, 4294967294},
		{4294967294, nil, 4294967293},
		{65534, []uint32{4294967294, 4294967293, 1}, 4294967292},
		{4294967294, []uint32{4294967293}, 4294967292},
	} {
		if got, err := spareGID(tc.gid, tc.groups); err != nil || got != tc.want {
			t.Errorf("spareGID(%d, %v) = %d, %v; want %d", tc.gid, tc.groups, got, err, tc.want)
		}
	}
}
