// Package sandbox is how privsep confines a spawned worker as its
// [confine.Config] says, and how the parent checks it: [Prepare] validates
// the Config in the parent and compiles its seccomp filter into the
// worker's environment, [CloneFlags] gives the namespaces to start it in,
// [Apply] runs in the worker before its hello (resource limits, Landlock,
// the seccomp filter, on every thread) and returns its report, and [Verify]
// checks in the parent, after the hello, what /proc shows of every thread
// of the worker against the Config. It works on Linux only; privsep calls it
// from its Linux files alone.
package sandbox
