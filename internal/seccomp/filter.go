//go:build linux

package seccomp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"syscall"
)

// Action is what the kernel does with a call: the SECCOMP_RET_* value a
// filter returns.
type Action uint32

// Actions. [Errno] builds the action that fails a call with an error.
const (
	KillProcess Action = 0x80000000 // SECCOMP_RET_KILL_PROCESS: the process dies of SIGSYS
	Log         Action = 0x7ffc0000 // SECCOMP_RET_LOG: allowed, and logged by the kernel (audit)
	Allow       Action = 0x7fff0000 // SECCOMP_RET_ALLOW
)

const retErrno = 0x00050000 // SECCOMP_RET_ERRNO

// Errno returns the action that fails a call with e (e.g. syscall.EPERM).
func Errno(e syscall.Errno) Action { return retErrno | Action(e&0xffff) }

func (a Action) String() string {
	switch {
	case a == KillProcess:
		return "kill"
	case a == Log:
		return "log"
	case a == Allow:
		return "allow"
	case a&0xffff0000 == retErrno:
		return "errno " + syscall.Errno(a&0xffff).Error()
	}
	return fmt.Sprintf("Action(%#x)", uint32(a))
}

// Cond holds when the call's argument Arg (0 to 5), masked with Mask,
// equals Value. With Mask of 32 bits or fewer only the low half of the
// argument is compared.
type Cond struct {
	Arg   int
	Mask  uint64
	Value uint64
}

// Eq holds when the low 32 bits of argument arg (an int) equal v.
func Eq(arg int, v uint32) Cond { return Cond{Arg: arg, Mask: 0xffffffff, Value: uint64(v)} }

// Eq64 holds when all 64 bits of argument arg (a pointer or a long) equal v.
func Eq64(arg int, v uint64) Cond { return Cond{Arg: arg, Mask: ^uint64(0), Value: v} }

// Masked holds when the low 32 bits of argument arg, masked, equal v.
func Masked(arg int, mask, v uint32) Cond {
	return Cond{Arg: arg, Mask: uint64(mask), Value: uint64(v)}
}

// Clear holds when none of bits is set in the low 32 bits of argument arg.
func Clear(arg int, bits uint32) Cond { return Masked(arg, bits, 0) }

// Rule is one way a call may go: the action, if every condition holds.
type Rule struct {
	Conds  []Cond
	Action Action
}

// Filter is a seccomp filter being built. The zero value has no rules,
// Default 0 (SECCOMP_RET_KILL_THREAD: set it) and BadArch 0; use [New].
type Filter struct {
	// Default is the action of a call with no rule that applies.
	Default Action
	// BadArch is the action of a call of another architecture or ABI.
	BadArch Action

	rules map[uint32][]Rule
	names map[uint32]string
}

// ErrUnknownCall is wrapped by the errors about a system call name this
// architecture does not have.
var ErrUnknownCall = errors.New("seccomp: unknown system call")

// New returns an empty filter with the given default action, which kills
// the process for calls of another architecture.
func New(def Action) *Filter {
	return &Filter{Default: def, BadArch: KillProcess, rules: map[uint32][]Rule{}, names: map[uint32]string{}}
}

// Supported reports whether the package knows this architecture's calls.
func Supported() bool { return nativeArch != 0 }

// Known reports whether name is a system call of this architecture.
func Known(name string) bool {
	_, ok := sysnums[name]
	return ok
}

// Add appends a rule for the call name: action if all conds hold.
func (f *Filter) Add(name string, action Action, conds ...Cond) error {
	nr, ok := sysnums[name]
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownCall, name)
	}
	for _, c := range conds {
		if c.Arg < 0 || c.Arg > 5 {
			return fmt.Errorf("seccomp: %s: argument %d out of range", name, c.Arg)
		}
		if c.Value&^c.Mask != 0 {
			return fmt.Errorf("seccomp: %s: value %#x has bits outside mask %#x", name, c.Value, c.Mask)
		}
	}
	f.rules[nr] = append(f.rules[nr], Rule{Conds: slices.Clone(conds), Action: action})
	f.names[nr] = name
	return nil
}

// Remove drops every rule of the call name: it gets the default action.
func (f *Filter) Remove(name string) error {
	nr, ok := sysnums[name]
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownCall, name)
	}
	delete(f.rules, nr)
	delete(f.names, nr)
	return nil
}

// Calls returns the names of the calls that have rules, sorted.
func (f *Filter) Calls() []string {
	names := make([]string, 0, len(f.names))
	for _, n := range f.names {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Insn is one classic BPF instruction (struct sock_filter).
type Insn struct {
	Code   uint16
	Jt, Jf uint8
	K      uint32
}

// Classic BPF opcodes used here.
const (
	ldAbs  = 0x20 // BPF_LD | BPF_W | BPF_ABS
	andK   = 0x54 // BPF_ALU | BPF_AND | BPF_K
	ja     = 0x05 // BPF_JMP | BPF_JA
	jeqK   = 0x15 // BPF_JMP | BPF_JEQ | BPF_K
	jgtK   = 0x25 // BPF_JMP | BPF_JGT | BPF_K
	jgeK   = 0x35 // BPF_JMP | BPF_JGE | BPF_K
	retK   = 0x06 // BPF_RET | BPF_K
	maxLen = 4096 // BPF_MAXINSNS

	offNr   = 0  // struct seccomp_data: int nr
	offArch = 4  // __u32 arch
	offArgs = 16 // __u64 args[6], little-endian here

	x32Bit = 0x40000000 // __X32_SYSCALL_BIT
)

// leafSize is how many ranges a leaf of the search tree compares one by one.
const leafSize = 4

// Assemble returns the filter as a BPF program.
func (f *Filter) Assemble() ([]Insn, error) {
	if !Supported() {
		return nil, fmt.Errorf("seccomp: no system call table for this architecture: %w", errors.ErrUnsupported)
	}
	a := &assembler{labels: map[int]int{}}
	// Architecture, then the x32 ABI, which shares AUDIT_ARCH_X86_64.
	a.emit(Insn{Code: ldAbs, K: offArch})
	a.emit(Insn{Code: jeqK, K: nativeArch, Jt: 1})
	a.emit(Insn{Code: retK, K: uint32(f.BadArch)})
	a.emit(Insn{Code: ldAbs, K: offNr})
	if x32 {
		a.emit(Insn{Code: jgeK, K: x32Bit, Jf: 1})
		a.emit(Insn{Code: retK, K: uint32(f.BadArch)})
	}
	nrs := make([]uint32, 0, len(f.rules))
	for nr := range f.rules {
		nrs = append(nrs, nr)
	}
	slices.Sort(nrs)
	// Calls of consecutive numbers with the same unconditional action
	// make one range; a call with conditions is a range of its own,
	// with a body of rules.
	var segs []segment
	for _, nr := range nrs {
		rules := f.rules[nr]
		if simple(rules) {
			if n := len(segs); n > 0 && segs[n-1].body == 0 && segs[n-1].hi+1 == nr && segs[n-1].action == rules[0].Action {
				segs[n-1].hi = nr
				continue
			}
			segs = append(segs, segment{lo: nr, hi: nr, action: rules[0].Action})
			continue
		}
		segs = append(segs, segment{lo: nr, hi: nr, body: a.label(), nr: nr})
	}
	deflt := a.label()
	a.tree(segs, deflt)
	a.mark(deflt)
	a.emit(Insn{Code: retK, K: uint32(f.Default)})
	for _, sg := range segs {
		if sg.body == 0 {
			continue
		}
		a.mark(sg.body)
		for _, r := range f.rules[sg.nr] {
			next := a.label()
			for _, c := range r.Conds {
				lo, hi := offArgs+8*uint32(c.Arg), offArgs+8*uint32(c.Arg)+4
				if m := uint32(c.Mask >> 32); m != 0 {
					a.cmp(hi, m, uint32(c.Value>>32), next)
				}
				if m := uint32(c.Mask); m != 0 {
					a.cmp(lo, m, uint32(c.Value), next)
				}
			}
			a.emit(Insn{Code: retK, K: uint32(r.Action)})
			a.mark(next)
		}
		a.emit(Insn{Code: retK, K: uint32(f.Default)})
	}
	prog, err := a.resolve()
	if err != nil {
		return nil, err
	}
	if len(prog) > maxLen {
		return nil, fmt.Errorf("seccomp: program of %d instructions exceeds the kernel's %d", len(prog), maxLen)
	}
	return prog, nil
}

// simple reports whether rules are one unconditional action, which the
// search tree returns directly (for a range of such calls at once).
func simple(rules []Rule) bool { return len(rules) == 1 && len(rules[0].Conds) == 0 }

// segment is a range of call numbers [lo, hi] with one unconditional
// action, or a single call nr with a body of rules at label body.
type segment struct {
	lo, hi uint32
	action Action
	body   int
	nr     uint32
}

// tree emits a binary search over segs (sorted, disjoint) that returns a
// range's action or jumps to a call's body, and jumps to deflt for any
// other number. The accumulator holds the call number. Conditional jumps
// are short (to the next instruction but one or two); far targets are
// reached by unconditional jumps, whose offsets have 32 bits.
func (a *assembler) tree(segs []segment, deflt int) {
	if len(segs) <= leafSize {
		// A leaf tries its segments in order: a number above one goes
		// on to the next; one below it (in a gap) matches none of the
		// rest either, and ends at the jump to deflt.
		for _, sg := range segs {
			if sg.lo == sg.hi {
				a.emit(Insn{Code: jeqK, K: sg.lo, Jf: 1})
			} else {
				a.emit(Insn{Code: jgtK, K: sg.hi, Jt: 2})
				a.emit(Insn{Code: jgeK, K: sg.lo, Jf: 1})
			}
			if sg.body != 0 {
				a.jump(sg.body)
			} else {
				a.emit(Insn{Code: retK, K: uint32(sg.action)})
			}
		}
		a.jump(deflt)
		return
	}
	mid := len(segs) / 2
	right := a.label()
	a.emit(Insn{Code: jgeK, K: segs[mid].lo, Jf: 1})
	a.jump(right)
	a.tree(segs[:mid], deflt)
	a.mark(right)
	a.tree(segs[mid:], deflt)
}

// assembler collects instructions and resolves jumps to labels.
type assembler struct {
	prog   []Insn
	labels map[int]int // label → instruction index, once marked
	nlab   int
	fixups []fixup
}

type fixup struct {
	at, label int
	field     byte // 'k' (ja), 'f' (jf of a comparison)
}

func (a *assembler) emit(i Insn) { a.prog = append(a.prog, i) }

func (a *assembler) label() int { a.nlab++; return a.nlab }

func (a *assembler) mark(l int) { a.labels[l] = len(a.prog) }

func (a *assembler) jump(l int) {
	a.fixups = append(a.fixups, fixup{at: len(a.prog), label: l, field: 'k'})
	a.emit(Insn{Code: ja})
}

// cmp loads the 32-bit word at off, masks it, and jumps to fail unless it
// equals v.
func (a *assembler) cmp(off, mask, v uint32, fail int) {
	a.emit(Insn{Code: ldAbs, K: off})
	if mask != 0xffffffff {
		a.emit(Insn{Code: andK, K: mask})
	}
	a.fixups = append(a.fixups, fixup{at: len(a.prog), label: fail, field: 'f'})
	a.emit(Insn{Code: jeqK, K: v})
}

func (a *assembler) resolve() ([]Insn, error) {
	for _, f := range a.fixups {
		to, ok := a.labels[f.label]
		if !ok {
			return nil, fmt.Errorf("seccomp: internal error: label %d never placed", f.label)
		}
		off := to - f.at - 1
		if off < 0 {
			return nil, fmt.Errorf("seccomp: internal error: backward jump at %d", f.at)
		}
		switch f.field {
		case 'k':
			a.prog[f.at].K = uint32(off)
		case 'f':
			if off > 255 {
				return nil, fmt.Errorf("seccomp: rule too long: conditional jump of %d at %d", off, f.at)
			}
			a.prog[f.at].Jf = uint8(off)
		}
	}
	return a.prog, nil
}

// Encode returns prog as bytes (struct sock_filter, little-endian), to pass
// a program to another process.
func Encode(prog []Insn) []byte {
	b := make([]byte, 0, 8*len(prog))
	for _, in := range prog {
		b = binary.LittleEndian.AppendUint16(b, in.Code)
		b = append(b, in.Jt, in.Jf)
		b = binary.LittleEndian.AppendUint32(b, in.K)
	}
	return b
}

// Decode parses a program encoded by Encode. It checks the length only:
// the kernel checks the program when it is installed.
func Decode(b []byte) ([]Insn, error) {
	if len(b) == 0 || len(b)%8 != 0 || len(b)/8 > maxLen {
		return nil, fmt.Errorf("seccomp: encoded program of %d bytes", len(b))
	}
	prog := make([]Insn, len(b)/8)
	for i := range prog {
		p := b[8*i:]
		prog[i] = Insn{Code: binary.LittleEndian.Uint16(p), Jt: p[2], Jf: p[3], K: binary.LittleEndian.Uint32(p[4:])}
	}
	return prog, nil
}
