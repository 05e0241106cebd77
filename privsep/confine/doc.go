// Package confine says how a worker that privsep spawns is confined, and
// holds what its parent verified of it. A [Config] is what is asked
// (privsep's Spec.Confine); a [Verified] is what the parent found
// (privsep's Process.Confinement and Peer.Confinement).
//
//	p, err := s.Spawn(ctx, privsep.Spec{
//		Role: "web", UID: 65534, GID: 65534,
//		Confine: &confine.Config{
//			Promises: []confine.Promise{confine.PromiseRpath},
//			Landlock: []confine.LandlockRule{{Path: "/srv/www", Access: confine.LandlockRead}},
//			NoFile:   1024,
//			NewNet:   true,
//		},
//	})
//	...
//	log.Print(p.Confinement()) // verified: no_new_privs=true seccomp=true ...
//
// # What the worker applies, and what the parent checks
//
// A spawned worker confines itself before its hello, as its Config says:
// resource limits, a Landlock domain (the paths it may read, write or
// execute, the TCP ports it may bind and connect to, and no abstract Unix
// socket or signal outside its domain), and a seccomp filter built from
// pledge-like promises ("stdio", "rpath", "inet", ...) that keeps out what
// Landlock does not see (UDP, Multipath TCP, netlink, io_uring, namespaces,
// ptrace), all on every thread; the parent adds new network, mount and IPC
// namespaces at clone. The parent compiles the filter once per Spawn; the
// worker only applies it.
//
// Before admitting the worker, the parent checks in /proc that every thread
// has no_new_privs and the filter (one more than the parent's own), and that
// the limits and namespaces are as asked; the worker's own report of its
// Landlock domain, which /proc does not show, is recorded beside, marked as
// such ([Verified].SelfReported). A worker that does not match is killed and
// Spawn fails with an error that matches privsep.ErrVerify and says what
// differed. Strict by default: a kernel without a feature asked for fails
// Spawn, naming it; with [Config.BestEffort] the worker applies what the
// kernel has and reports what it skipped, and the parent logs a warning.
//
// A confined worker reaches files through its parent (privsep's
// Worker.Open, Worker.Stat, ... and Policy.Files), and gets its listeners from it
// (Worker.Listen): it never listens on TCP itself, since listen(2) binds an
// unbound socket to an ephemeral port that Landlock does not see, and never
// sends with MSG_FASTOPEN, a connect past Landlock's port check.
//
// # What stays out of reach, per kernel
//
// Landlock before ABI 9 does not restrict connecting to pathname Unix
// sockets: a worker with [PromiseUnix] then reaches every socket its UID may
// write to, whatever its network namespace; leave the promise out where that
// matters. [PromiseFattr] changes the modes, owners and times of any file
// the worker's UID owns, whatever its Landlock rules: Landlock has no right
// for those. New namespaces need a root parent or privsep's Spec.UserNS.
// The seccomp filter knows amd64 and arm64; elsewhere strict confinement
// fails and best effort has no filter.
//
// # Other systems
//
// Confinement works on Linux only (Landlock, seccomp, /proc). The types are
// the same on every system, so that a program that fills a Config builds
// everywhere; there privsep's Spawn fails with an error that matches
// errors.ErrUnsupported, and Process.Confinement returns nil.
package confine
