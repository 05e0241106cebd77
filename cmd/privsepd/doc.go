// Command privsepd is a small privilege-separated web server: the peercred
// toolkit end to end, in one program.
//
// The parent process keeps root and owns the policy. It starts a "web"
// worker as an unprivileged user (nobody by default) with [privsep], proves
// who the worker is from what the kernel says, and then answers the
// worker's capability calls, and only those its policy lists: a listening
// socket on the HTTP address (port 80 when root), and a root-only secret file
// (mode 0600, created in the state directory on first start). The worker
// serves a page that shows its own PID and UID, the length and SHA-256 digest
// of the secret it obtained through the parent (never the secret itself: the
// page is for anyone who reaches the port), and how many requests it served.
// It bounds what each client holds (header, read, write and idle timeouts)
// and the connections open at once (below its descriptor limit, closing the
// idle ones that waited longest), so that one user's idle connections do not
// keep others out.
//
// A control socket answers "status" to allowed users and "restart-worker"
// and "stop" to admins only, decided by the caller's kernel-reported
// credentials; "privsepd ctl COMMAND" is its client, and checks first that the
// socket is served by root or by the calling user.
//
// With -control-unit backup.service (repeatable, or comma-separated), the
// control socket also admits, whatever its UID, a process that systemd runs
// in that unit, as its cgroup says ([peercred.AllowUnits], on what
// [peercred.Cred.Attest] reads through the caller's pidfd). The rules are
// combined with [peercred.AnyOf]: every -allow-uid, -allow-gid, -admin-uid and
// -control-unit lets more callers in, and none narrows another, so that
// naming a unit never locks out root or the admins, whose shells run in
// session scopes. A unit makes no admin: its processes may ask for "status".
// A caller that no rule admits is disconnected, and the log line says what did
// not match: its uid, its groups, and its unit and cgroup. The unit rule fails
// closed: on Linux before 6.5 (no SO_PEERPIDFD), for a caller that has exited,
// and for another user's process when privsepd runs without root (it may not
// read that process's /proc entries), it admits nobody. Only root, or a
// service manager in the subtree systemd delegated to it, can move a process
// into a unit's cgroup: do not name a unit with Delegate=yes whose processes
// you would not admit all, nor a user's unit (user@UID.service admits all of
// that user's processes, as -allow-uid would).
//
// Without root, privsepd runs the same flow as the calling user, with no
// privilege drop, on an unprivileged port, and says so in its log.
//
//	go run ./cmd/privsepd          # then: curl http://127.0.0.1:8080/ (or :80 as root)
//	go run ./cmd/privsepd ctl status
//
// Started by systemd, privsepd takes its control socket from the socket unit
// (FileDescriptorName=control) instead of listening itself; systemd/ holds
// example units, privsepd.socket and privsepd.service, that match its
// defaults as root. Try it without systemd running:
//
//	systemd-socket-activate -l /tmp/privsepd.sock --fdname=control privsepd
//
// Run "privsepd -h" for the flags, "privsepd --version" for the build.
// privsepd needs Linux.
package main
