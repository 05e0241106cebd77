package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/peercred/peercred"
	"github.com/peercred/peercred/cmd/internal/ids"
)

func dialCommand(stdout io.Writer) *command {
	fs := flag.NewFlagSet("dial", flag.ContinueOnError)
	expect := fs.String("expect-uid", "", "exit with status 1, printing nothing on stdout, unless the server's uid is `USER`\n(a name or UID)")
	asJSON := fs.Bool("json", false, "print a JSON object with the fields pid, uid, user, gid, groups, exe,\nstart_time, unit, user_unit, cgroup, systemd_cgroup, sha256 and attest_error\n(those that are known)")
	hash := fs.Bool("sha256", false, "also print the SHA-256 of the server's executable, read through\n/proc/PID/exe, after the -expect-uid check (at most 256 MiB; a server whose\nexecutable is on a file system it serves itself can make dial wait as long\nas it likes)")
	timeout := fs.Duration("timeout", 5*time.Second, "give up connecting after this long")
	return &command{
		name: "dial", args: "SOCKET", fs: fs,
		about: `Connect to SOCKET and print who serves it, as the kernel recorded the server
when it called listen(2) (a server that dropped privileges afterwards is still
reported as it was then):
  pid=812 uid=0(root) gid=0 groups=- exe=/usr/sbin/app start=1234 unit=app.service cgroup=/system.slice/app.service
(one line). Its executable, start time, systemd unit and cgroup are those of
that process now, read as "peercred serve -h" describes; where they cannot be
read (that process has exited, ...), attest-error= says why. Nothing is sent.
With -expect-uid, a script can refuse a socket that someone else has taken
(socket squatting) before it trusts it:
  peercred dial -expect-uid root /run/app.sock >/dev/null || exit 1
`,
		run: func(ctx context.Context, addr string) error {
			if *timeout <= 0 {
				return usageError{fmt.Errorf("-timeout %v: want a positive duration, such as 5s", *timeout)}
			}
			var want uint32
			if *expect != "" {
				uid, _, err := ids.UID(*expect)
				if err != nil {
					return usageError{fmt.Errorf("-expect-uid: %w", err)}
				}
				want = uid
			}
			ctx, cancel := context.WithTimeout(ctx, *timeout)
			defer cancel()
			c, err := peercred.Dial(ctx, addr)
			if err != nil {
				return err
			}
			defer c.Close()
			if cred := c.Cred(); *expect != "" && cred.UID != want {
				return fmt.Errorf("%s is served by uid %s (pid %d), not uid %s: refusing it (has someone else taken the socket?)",
					addr, ids.WithName(cred.UID), cred.PID, ids.WithName(want))
			}
			p := describe(c, time.Time{}, &peercred.AttestOptions{HashExecutable: *hash})
			return p.print(stdout, *asJSON)
		},
	}
}
