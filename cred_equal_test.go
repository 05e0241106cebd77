package peercred_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/peercred/peercred"
)

func TestCredEqual(t *testing.T) {
	a := (&peercred.Cred{PID: 1, UID: 2, GID: 3}).WithGroups([]uint32{4, 5})
	tests := []struct {
		name string
		x, y *peercred.Cred
		want bool
	}{
		{"the same fields are equal", a, a.Clone(), true},
		{"two nils are equal", nil, nil, true},
		{"nil is not a Cred", a, nil, false},
		{"another pid differs", a, (&peercred.Cred{PID: 9, UID: 2, GID: 3}).WithGroups([]uint32{4, 5}), false},
		{"another uid differs", a, (&peercred.Cred{PID: 1, UID: 9, GID: 3}).WithGroups([]uint32{4, 5}), false},
		{"another gid differs", a, (&peercred.Cred{PID: 1, UID: 2, GID: 9}).WithGroups([]uint32{4, 5}), false},
		{"other groups differ", a, (&peercred.Cred{PID: 1, UID: 2, GID: 3}).WithGroups([]uint32{5, 4}), false},
		{"unknown groups are not no groups", &peercred.Cred{PID: 1}, (&peercred.Cred{PID: 1}).WithGroups([]uint32{}), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.x.Equal(tt.y); got != tt.want {
				t.Errorf("%v.Equal(%v) = %v, want %v", tt.x, tt.y, got, tt.want)
			}
			if got := tt.y.Equal(tt.x); got != tt.want {
				t.Errorf("%v.Equal(%v) = %v, want %v", tt.y, tt.x, got, tt.want)
			}
			// go-cmp uses Equal, and so works on Creds read from a
			// connection, whose unexported fields it could not compare.
			if got := cmp.Equal(tt.x, tt.y); got != tt.want {
				t.Errorf("cmp.Equal(%v, %v) = %v, want %v", tt.x, tt.y, got, tt.want)
			}
		})
	}
}
