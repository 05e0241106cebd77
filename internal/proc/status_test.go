package proc_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/peercred/peercred/internal/proc"
)

const sample = "Name:\tevil\\nUid:\t0\nUmask:\t0022\nState:\tS (sleeping)\n" +
	"Uid:\t1234\t1234\t1234\t1234\nGid:\t5\t5\t5\t5\nGroups:\t\nNoNewPrivs:\t1\nSeccomp:\t2\nSeccomp_filters:\t1\n" +
	"Uidx:\t9\nCpus_allowed:\t3"

func TestStatusField(t *testing.T) {
	s := proc.Status(sample)
	for _, tt := range []struct {
		name, want string
		ok         bool
	}{
		{"Name", `evil\nUid:	0`, true}, // the kernel's escape: one line
		{"Uid", "1234\t1234\t1234\t1234", true},
		{"Groups", "", true},
		{"NoNewPrivs", "1", true},
		{"Seccomp", "2", true}, // not Seccomp_filters
		{"Seccomp_filters", "1", true},
		{"Cpus_allowed", "3", true}, // the last line, with no newline
		{"Ui", "", false},
		{"Missing", "", false},
		{"", "", false},
	} {
		got, ok := s.Field(tt.name)
		if got != tt.want || ok != tt.ok {
			t.Errorf("Field(%q) = %q, %v; want %q, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}

func TestStatusIDs(t *testing.T) {
	s := proc.Status(sample + "\nBad:\t1 x\nBig:\t4294967296\n")
	for _, tt := range []struct {
		name string
		want []uint32
		ok   bool
	}{
		{"Uid", []uint32{1234, 1234, 1234, 1234}, true},
		{"Groups", nil, true},
		{"Bad", nil, false},
		{"Big", nil, false},
		{"Missing", nil, false},
	} {
		got, ok := s.IDs(tt.name)
		if diff := cmp.Diff(tt.want, got); diff != "" || ok != tt.ok {
			t.Errorf("IDs(%q) = %v, %v; want %v, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}

func TestReadStatusSelf(t *testing.T) {
	s, err := proc.ReadStatus(fmt.Sprintf("/proc/%d/status", os.Getpid()))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	ids, ok := s.IDs("Uid")
	if !ok || len(ids) != 4 || ids[0] != uint32(os.Getuid()) || ids[1] != uint32(os.Geteuid()) {
		t.Errorf("Uid of this process: %v, %v (uid %d, euid %d)", ids, ok, os.Getuid(), os.Geteuid())
	}
}
