// Package seccomp builds and installs seccomp-bpf filters (Linux): a table
// of system calls, each allowed, refused or killed, outright or depending on
// its arguments, assembled into classic BPF by hand and installed on every
// thread of the process at once.
//
// A filter first checks the architecture of the call and kills the process
// for any other (i386 or x32 calls on amd64 are a classic way around a
// filter written for the native table). It then finds the call's rules with
// a binary search over the call numbers, so a call costs about a dozen BPF
// instructions however long the table; the rules of one call are tried in
// order, the first whose conditions all hold gives the action, and a call
// with no rule, or whose rules all fail, gets the filter's default action.
//
// Conditions compare an argument, masked, with a value. A mask that fits in
// 32 bits compares only the low half of the register, which is all the
// kernel reads of an int argument (and of clone's flags); a wider mask also
// compares the high half, as a pointer needs.
//
// The package knows the system call tables of linux/amd64 and linux/arm64;
// elsewhere Assemble fails with errors.ErrUnsupported. It is pure encoding
// but for [Install].
package seccomp
