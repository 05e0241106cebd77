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
	asJSON := fs.Bool("json", false, "print a JSON object with the fields pid, uid, user, gid, groups, exe")
	timeout := fs.Duration("timeout", 5*time.Second, "give up connecting after this long")
	return &command{
		name: "dial", args: "SOCKET", fs: fs,
		about: `Connect to SOCKET and print who serves it, as the kernel recorded the server
when it called listen(2) (a server that dropped privileges afterwards is still
reported as it was then):
  pid=812 uid=0(root) gid=0 groups=- exe=/usr/sbin/app
Nothing is sent. With -expect-uid, a script can refuse a socket that someone
else has taken (socket squatting) before it trusts it:
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
			p := describe(c, time.Time{})
			if *expect != "" && p.UID != want {
				return fmt.Errorf("%s is served by uid %s (pid %d), not uid %s: refusing it (has someone else taken the socket?)",
					addr, ids.WithName(p.UID), p.PID, ids.WithName(want))
			}
			return p.print(stdout, *asJSON)
		},
	}
}
