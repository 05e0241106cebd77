// Command peercred shows what the kernel says about the other end of a
// Unix-domain socket: who connects to a server, and who serves a socket.
//
//	peercred serve SOCKET   print every client: time, pid, uid, gid, groups, executable, unit, cgroup
//	peercred dial SOCKET    print who serves SOCKET; -expect-uid guards a script
//	peercred echo SOCKET    a line echo server that only allowed users may use
//
// Run "peercred -h" for the details, "peercred help COMMAND" (or
// "peercred COMMAND -h") for the flags of a command, and "peercred --version"
// for the build. Started by systemd (or systemd-socket-activate) with one
// listening socket, serve and echo serve that socket.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/peercred/peercred/cmd/internal/version"
)

// Exit statuses.
const (
	exitOK    = 0 // success, or a server stopped by SIGINT or SIGTERM
	exitFail  = 1 // a runtime error, or a refusal (dial -expect-uid)
	exitUsage = 2 // bad command line
)

const usage = `Usage: peercred COMMAND [flags] SOCKET
       peercred help [COMMAND]
       peercred --version

peercred shows what the kernel says about the other end of a Unix-domain
socket (SO_PEERCRED): the process, user and groups, never what the peer claims.

Commands:
  serve SOCKET   listen and print one line per client: time, pid, uid (and user
                 name), gid, groups, executable, start time, systemd unit,
                 cgroup (or why these could not be read: attest-error=)
  dial SOCKET    connect and print who serves SOCKET (as of its listen call),
                 the same way; with -expect-uid, fail unless that user does
  echo SOCKET    a line echo server that admits only allowed users (default:
                 the user who started it); others receive "Unauthorized access"

SOCKET is a file path, or @name for a Linux abstract socket (no file, and so no
permissions: anyone in the network namespace can connect or take the name).
Servers remove their socket file when they stop on SIGINT or SIGTERM.
Started by systemd (a socket unit) or systemd-socket-activate with one
listening socket, serve and echo serve it and SOCKET may be left out; the
socket file is then systemd's, and stays.
The executable shown is what /proc/PID/exe says of the process that
connected: a process can connect, then fork and exec another program that
keeps the connection, so treat it as information, never as authorization.
So are the systemd unit and cgroup; "peercred serve -h" says how they are read,
and -sha256 (serve, dial) adds the executable's SHA-256.
Run "peercred help COMMAND" or "peercred COMMAND -h" for the flags of a
command, "peercred --version" for the version of this build.

Examples:
  peercred serve /tmp/who.sock           # then, from any user: nc -U /tmp/who.sock
  peercred serve -json @who              # one JSON object per client
  peercred dial -expect-uid root /run/app.sock && echo "root serves it"
  peercred echo -allow-uid alice -allow-gid adm /tmp/echo.sock
  systemd-socket-activate -l /tmp/who.sock peercred serve

Exit status:
  0  success; a server stopped by SIGINT or SIGTERM
  1  error (cannot listen or connect, ...), or dial -expect-uid saw another user
  2  usage error
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// command is one subcommand: its flags are defined on fs, and run is called
// with the socket address once they are parsed.
type command struct {
	name  string
	args  string // synopsis after the flags
	about string // what it does, for -h
	fs    *flag.FlagSet
	run   func(ctx context.Context, addr string) error
	// server: SOCKET may be left out (addr is ""), when systemd
	// passes the socket (see listenFlags.listen).
	server bool
}

// newCommand returns the command name, or nil if there is none.
func newCommand(name string, stdout io.Writer, log *slog.Logger) *command {
	switch name {
	case "serve":
		return serveCommand(stdout, log)
	case "dial":
		return dialCommand(stdout)
	case "echo":
		return echoCommand(log)
	}
	return nil
}

// printHelp prints the help of cmd on w.
func printHelp(w io.Writer, cmd *command) {
	fmt.Fprintf(w, "Usage: peercred %s [flags] %s\n\n%s\nFlags:\n", cmd.name, cmd.args, cmd.about)
	cmd.fs.SetOutput(w)
	cmd.fs.PrintDefaults()
	fmt.Fprint(w, "\nExit status: 0 success (a server stopped by SIGINT or SIGTERM), 1 error or refusal, 2 usage error.\n")
}

// run runs the command line args and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	switch args[0] {
	case "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	case "-version", "--version":
		fmt.Fprintln(stdout, version.String("peercred"))
		return exitOK
	case "help":
		switch len(args) {
		case 1:
			fmt.Fprint(stdout, usage)
			return exitOK
		case 2:
			if cmd := newCommand(args[1], stdout, log); cmd != nil {
				printHelp(stdout, cmd)
				return exitOK
			}
			fmt.Fprintf(stderr, "peercred help: unknown command %q (want serve, dial or echo)\nRun 'peercred -h' for usage.\n", args[1])
		default:
			fmt.Fprintf(stderr, "peercred help: want at most one COMMAND, got %d\nRun 'peercred -h' for usage.\n", len(args)-1)
		}
		return exitUsage
	}
	cmd := newCommand(args[0], stdout, log)
	if cmd == nil {
		fmt.Fprintf(stderr, "peercred: unknown command %q\n\n%s", args[0], usage)
		return exitUsage
	}
	// Usage goes to stdout when asked for, and is only pointed to after
	// an error, which the flag package prints to stderr.
	cmd.fs.SetOutput(stderr)
	cmd.fs.Usage = func() {}
	hint := fmt.Sprintf("Run 'peercred %s -h' for usage.\n", cmd.name)
	pos, err := parse(cmd.fs, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		printHelp(stdout, cmd)
		return exitOK
	}
	if err != nil {
		fmt.Fprint(stderr, hint)
		return exitUsage
	}
	addr := ""
	switch {
	case len(pos) == 1 && pos[0] == "":
		fmt.Fprintf(stderr, "peercred %s: the SOCKET argument is empty\n%s", cmd.name, hint)
		return exitUsage
	case len(pos) == 1:
		addr = pos[0]
	case len(pos) == 0 && cmd.server:
		// Only a socket passed by systemd will do; listen says so
		// if there is none.
	default:
		fmt.Fprintf(stderr, "peercred %s: want one SOCKET argument, got %d\n%s", cmd.name, len(pos), hint)
		return exitUsage
	}
	if err := cmd.run(ctx, addr); err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "peercred %s: %v\n%s", cmd.name, err, hint)
			return exitUsage
		}
		fmt.Fprintf(stderr, "peercred %s: %v\n", cmd.name, err)
		return exitFail
	}
	return exitOK
}

// parse parses args with fs, allowing flags after the positional arguments
// too ("peercred serve /tmp/s -json"), and returns the positional arguments.
// Everything after "--" is positional.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// usageError is a bad flag value found after parsing; it exits with status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }
