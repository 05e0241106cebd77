package ids

import (
	"os/user"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestListSet(t *testing.T) {
	if _, err := user.Lookup("root"); err != nil {
		t.Skipf("no user database with root: %v", err)
	}
	tests := []struct {
		kind    Kind
		values  []string
		want    []uint32
		wantErr bool
	}{
		{Users, []string{"1000"}, []uint32{1000}, false},
		{Users, []string{"1000", "0,65534"}, []uint32{1000, 0, 65534}, false},
		{Users, []string{"root"}, []uint32{0}, false},
		{Groups, []string{"root,4294967295"}, []uint32{0, 4294967295}, false},
		{Users, []string{"4294967296"}, nil, true}, // not a uint32: taken as a name, unknown
		{Users, []string{"1000,"}, nil, true},
		{Users, []string{"no-such-user-here"}, nil, true},
		{Groups, []string{"no-such-group-here"}, nil, true},
	}
	for _, tt := range tests {
		var l List
		l.Kind = tt.kind
		var err error
		for _, v := range tt.values {
			if err = l.Set(v); err != nil {
				break
			}
		}
		if (err != nil) != tt.wantErr {
			t.Errorf("Set(%q) (kind %d): error %v, want error: %v", tt.values, tt.kind, err, tt.wantErr)
			continue
		}
		if err == nil {
			if diff := cmp.Diff(tt.want, l.IDs); diff != "" {
				t.Errorf("Set(%q) (kind %d) (-want +got):\n%s", tt.values, tt.kind, diff)
			}
		}
	}
}

func TestWithName(t *testing.T) {
	if _, err := user.Lookup("root"); err != nil {
		t.Skipf("no user database with root: %v", err)
	}
	if got := WithName(0); got != "0(root)" {
		t.Errorf("WithName(0) = %q, want 0(root)", got)
	}
	if got := WithName(4294967294); got != "4294967294" {
		t.Errorf("WithName(4294967294) = %q, want the number alone", got)
	}
}
