// Package peercred tells a Unix-domain socket server who its clients are,
// and a client who its server is, from what the kernel knows rather than
// what the other side says.
//
// Every connection accepted by a [Listener] is a [*Conn] that carries the
// peer's [Cred]: its PID, UID, GID and supplementary groups, read from the
// kernel (SO_PEERCRED and SO_PEERGROUPS on Linux, LOCAL_PEERCRED on macOS
// and FreeBSD, SO_PEERCRED on OpenBSD, LOCAL_PEEREID on NetBSD). A policy, an
// [Authorizer], turns peers away before Accept returns them:
//
//	lc := peercred.ListenConfig{
//		Mode:      0660,
//		Authorize: peercred.AnyOf(peercred.SameUser(), peercred.AllowGIDs(27)),
//	}
//	l, err := lc.Listen(ctx, "/run/app/app.sock")
//	if err != nil {
//		return err
//	}
//	defer l.Close()
//	for {
//		c, err := l.AcceptPeerCred()
//		if err != nil {
//			return err
//		}
//		go serve(c, c.Cred()) // c.Cred().UID is the kernel's word
//	}
//
// [Get] reads the credentials of any Unix-domain net.Conn; [Dial] connects
// and returns the server's, so a client can refuse a socket that someone
// else is serving. [ConnContext] and [FromContext] carry them into
// http.Server handlers. [Socketpair], [Conn.WriteWithFiles] and
// [Conn.ReadWithFiles] pass descriptors between processes, every one of them
// close-on-exec. On Linux 6.5 and later [Conn.PidFD] pins the peer process
// itself, so its PID can't be mistaken for a later process that reuses it.
// [ListenConfig.ActivationListeners] takes listening sockets from systemd
// (socket activation), with the same checks as Listen, and [DialFunc] lets an
// http.Client refuse a server that is not who it expects.
//
// # What the kernel reports, and when
//
// The kernel records credentials when the connection is made: a client's at
// connect(2), a server's at listen(2), and both ends of a socket pair at
// socketpair(2). It reports effective IDs. Three consequences matter:
//
//   - A socket pair reports its creator on both ends. If a parent makes a
//     pair, starts a child with one end and the child drops to "nobody",
//     [Get] on the parent's end still reports the parent. Identify such a
//     child by SCM_CREDENTIALS it sends after the drop, or by a connection
//     it makes itself.
//   - A server that drops privileges after listening is still reported as
//     the user it was when it listened.
//   - PID 0 means the peer is not visible in our PID namespace. A UID or
//     GID that our user namespace does not map reads as the overflow ID,
//     65534: never let it match an allow-list by accident.
//
// Abstract sockets ("@name", Linux) have no file and therefore no
// permissions: anyone in the network namespace can connect, or take the name
// first. Serve them with an Authorizer, and check the server with Dial.
//
// # Beyond the credentials: the peer's process (Linux)
//
// [Cred.Attest] describes the peer's process: its executable (path, device
// and inode, and on request its SHA-256), its cgroup and the systemd unit
// and slice that implies, its namespaces, its start time, and the container
// it seems to run in. It reads /proc so that a process that reused the
// peer's PID is never described: /proc/PID is opened, then the pidfd of the
// connection (SO_PEERPIDFD, Linux 6.5+) confirms the peer still lives, and
// every fact is read through that directory. [AllowUnits], [AllowCgroups],
// [AllowExecutableSHA256] and [SameNamespaces] decide by it; a fact that
// cannot be read is a refusal. Before Linux 6.5 every attestation fails;
// the cgroup ID needs 6.13 (PIDFD_GET_INFO) and is 0 before.
// [Cred.WithAttestation] reads once for several Authorizers and the log.
// [AttestPidFD] describes a process by a pidfd, such as a child's from
// exec.Cmd (whose socket pair reports its parent): Linux 5.3+.
//
// Linux is fully supported and tested. macOS, FreeBSD, OpenBSD and NetBSD use
// their native calls. On other systems the calls return an error that
// satisfies errors.Is(err, errors.ErrUnsupported).
package peercred
