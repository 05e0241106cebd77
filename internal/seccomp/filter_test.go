//go:build linux && (amd64 || arm64)

package seccomp

import (
	"errors"
	"math/rand/v2"
	"slices"
	"syscall"
	"testing"
)

// data is struct seccomp_data.
type data struct {
	nr   uint32
	arch uint32
	args [6]uint64
}

// run interprets prog (the subset of classic BPF Assemble emits) on d, as
// the kernel would, and checks every jump stays inside the program.
func run(t *testing.T, prog []Insn, d data) Action {
	t.Helper()
	word := func(off uint32) uint32 {
		switch {
		case off == offNr:
			return d.nr
		case off == offArch:
			return d.arch
		case off >= offArgs && off < offArgs+48 && off%4 == 0:
			a := d.args[(off-offArgs)/8]
			if (off-offArgs)%8 == 4 {
				return uint32(a >> 32)
			}
			return uint32(a)
		}
		t.Fatalf("load of offset %d", off)
		return 0
	}
	var acc uint32
	for pc := 0; ; pc++ {
		if pc >= len(prog) {
			t.Fatalf("ran off the end of a %d-instruction program", len(prog))
		}
		in := prog[pc]
		switch in.Code {
		case ldAbs:
			acc = word(in.K)
		case andK:
			acc &= in.K
		case ja:
			pc += int(in.K)
		case jeqK:
			if acc == in.K {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		case jgtK:
			if acc > in.K {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		case jgeK:
			if acc >= in.K {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		case retK:
			return Action(in.K)
		default:
			t.Fatalf("opcode %#x at %d", in.Code, pc)
		}
	}
}

func nr(t *testing.T, name string) uint32 {
	t.Helper()
	n, ok := sysnums[name]
	if !ok {
		t.Fatalf("no call %q", name)
	}
	return n
}

func TestAssemble(t *testing.T) {
	eperm := Errno(syscall.EPERM)
	f := New(eperm)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(f.Add("read", Allow))
	must(f.Add("write", Allow))
	must(f.Add("clone3", Errno(syscall.ENOSYS)))
	// socket(AF_UNIX, ...) or socket(AF_INET, SOCK_STREAM (any flags), 0).
	must(f.Add("socket", Allow, Eq(0, syscall.AF_UNIX)))
	must(f.Add("socket", Allow, Eq(0, syscall.AF_INET), Masked(1, 0xf, syscall.SOCK_STREAM), Eq(2, 0)))
	// kill(pid 42, any signal); prlimit64(0, any, NULL, any).
	must(f.Add("kill", Allow, Eq64(0, 42)))
	must(f.Add("prlimit64", Allow, Eq(0, 0), Eq64(2, 0)))
	must(f.Add("clone", Allow, Masked(0, syscall.CLONE_THREAD, syscall.CLONE_THREAD), Clear(0, syscall.CLONE_NEWUSER)))
	if err := f.Add("no_such_call", Allow); !errors.Is(err, ErrUnknownCall) {
		t.Errorf("Add(no_such_call) = %v, want ErrUnknownCall", err)
	}
	prog, err := f.Assemble()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		d    data
		want Action
	}{
		{"read", data{nr: nr(t, "read")}, Allow},
		{"write", data{nr: nr(t, "write")}, Allow},
		{"an unlisted call", data{nr: nr(t, "ptrace")}, eperm},
		{"clone3", data{nr: nr(t, "clone3")}, Errno(syscall.ENOSYS)},
		{"a foreign architecture", data{nr: nr(t, "read"), arch: 0x40000003}, KillProcess},
		{"socket AF_UNIX", data{nr: nr(t, "socket"), args: [6]uint64{syscall.AF_UNIX, syscall.SOCK_DGRAM}}, Allow},
		{"socket TCP with flags", data{nr: nr(t, "socket"), args: [6]uint64{syscall.AF_INET, syscall.SOCK_STREAM | syscall.SOCK_CLOEXEC | syscall.SOCK_NONBLOCK}}, Allow},
		{"socket AF_INET high bits ignored", data{nr: nr(t, "socket"), args: [6]uint64{1<<40 | syscall.AF_INET, syscall.SOCK_STREAM}}, Allow},
		{"socket MPTCP", data{nr: nr(t, "socket"), args: [6]uint64{syscall.AF_INET, syscall.SOCK_STREAM, 262}}, eperm},
		{"socket UDP", data{nr: nr(t, "socket"), args: [6]uint64{syscall.AF_INET, syscall.SOCK_DGRAM}}, eperm},
		{"socket netlink", data{nr: nr(t, "socket"), args: [6]uint64{syscall.AF_NETLINK, syscall.SOCK_RAW}}, eperm},
		{"kill self", data{nr: nr(t, "kill"), args: [6]uint64{42, 9}}, Allow},
		{"kill other", data{nr: nr(t, "kill"), args: [6]uint64{43, 9}}, eperm},
		{"kill, high bits set", data{nr: nr(t, "kill"), args: [6]uint64{1<<32 | 42, 9}}, eperm},
		{"prlimit64 get", data{nr: nr(t, "prlimit64"), args: [6]uint64{0, 7, 0, 0xc000}}, Allow},
		{"prlimit64 set", data{nr: nr(t, "prlimit64"), args: [6]uint64{0, 7, 0xc000, 0}}, eperm},
		{"prlimit64 set through a high-only pointer", data{nr: nr(t, "prlimit64"), args: [6]uint64{0, 7, 1 << 40, 0}}, eperm},
		{"clone a thread", data{nr: nr(t, "clone"), args: [6]uint64{0x3d0f00}}, Allow},
		{"clone a process", data{nr: nr(t, "clone"), args: [6]uint64{uint64(syscall.SIGCHLD)}}, eperm},
		{"clone a thread into a user namespace", data{nr: nr(t, "clone"), args: [6]uint64{0x3d0f00 | syscall.CLONE_NEWUSER}}, eperm},
	}
	if x32 {
		tests = append(tests, struct {
			name string
			d    data
			want Action
		}{"an x32 call", data{nr: x32Bit | nr(t, "read")}, KillProcess})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.d.arch == 0 {
				tt.d.arch = nativeArch
			}
			if got := run(t, prog, tt.d); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestAssembleRandom checks the program against the rules it was built
// from, for random tables of every size: each call gets the action of its
// first rule whose conditions hold, or the default.
func TestAssembleRandom(t *testing.T) {
	names := make([]string, 0, len(sysnums))
	for n := range sysnums {
		names = append(names, n)
	}
	slices.Sort(names)
	rng := rand.New(rand.NewPCG(1, 2))
	actions := []Action{Allow, Log, KillProcess, Errno(syscall.EPERM), Errno(syscall.ENOSYS), Errno(syscall.EACCES)}
	values := []uint64{0, 1, 2, 3, 0xff, 1 << 31, 0xffffffff, 1 << 32, 1<<32 | 1, ^uint64(0)}
	for iter := range 300 {
		def := actions[rng.IntN(len(actions))]
		f := New(def)
		// Every call with a simple rule, then tables of up to 150 calls
		// with up to 3 rules each (a bigger one would exceed BPF_MAXINSNS).
		n, maxRules := len(names), 1
		if iter > 0 {
			n, maxRules = rng.IntN(151), 3
			rng.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
		}
		for _, name := range names[:n] {
			for range 1 + rng.IntN(maxRules) {
				var conds []Cond
				for range rng.IntN(3) * (maxRules / 3) {
					c := Cond{Arg: rng.IntN(6), Mask: values[rng.IntN(len(values))]}
					c.Value = values[rng.IntN(len(values))] & c.Mask
					conds = append(conds, c)
				}
				action := actions[rng.IntN(len(actions))]
				if iter%3 == 1 {
					action = Allow // long ranges of one action
				}
				if err := f.Add(name, action, conds...); err != nil {
					t.Fatal(err)
				}
			}
		}
		prog, err := f.Assemble()
		if err != nil {
			t.Fatalf("%d calls: %v", n, err)
		}
		for range 400 {
			var d data
			d.arch = nativeArch
			d.nr = uint32(rng.IntN(500))
			if rng.IntN(2) == 0 && n > 0 {
				d.nr = sysnums[names[rng.IntN(n)]]
			}
			for i := range d.args {
				d.args[i] = values[rng.IntN(len(values))]
			}
			want := def
		rules:
			for _, r := range f.rules[d.nr] {
				for _, c := range r.Conds {
					if d.args[c.Arg]&c.Mask != c.Value {
						continue rules
					}
				}
				want = r.Action
				break
			}
			if got := run(t, prog, d); got != want {
				t.Fatalf("table of %d calls, call %d args %x: got %v, want %v", n, d.nr, d.args, got, want)
			}
		}
	}
}

func TestRemove(t *testing.T) {
	f := New(Errno(syscall.EPERM))
	f.Add("read", Allow)
	f.Add("write", Allow)
	if err := f.Remove("read"); err != nil {
		t.Fatal(err)
	}
	if got := f.Calls(); !slices.Equal(got, []string{"write"}) {
		t.Errorf("Calls() = %v, want [write]", got)
	}
	prog, err := f.Assemble()
	if err != nil {
		t.Fatal(err)
	}
	if got := run(t, prog, data{nr: nr(t, "read"), arch: nativeArch}); got != Errno(syscall.EPERM) {
		t.Errorf("removed call: %v, want EPERM", got)
	}
}

func TestEncode(t *testing.T) {
	f := New(Errno(syscall.EPERM))
	f.Add("read", Allow)
	f.Add("kill", Allow, Eq(0, 42))
	prog, err := f.Assemble()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(Encode(prog))
	if err != nil || !slices.Equal(got, prog) {
		t.Errorf("Decode(Encode(prog)) = %v, %v", got, err)
	}
	for _, b := range [][]byte{nil, make([]byte, 7), make([]byte, 8*(maxLen+1))} {
		if _, err := Decode(b); err == nil {
			t.Errorf("Decode of %d bytes: no error", len(b))
		}
	}
}
