package main

import (
	"encoding/hex"
	"encoding/json"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/peercred/peercred"
	"github.com/peercred/peercred/cmd/internal/ids"
	"github.com/peercred/peercred/cmd/internal/printable"
)

// peer is what serve and dial print about the other end of a conn.
type peer struct {
	Time   time.Time `json:"time,omitzero"`
	PID    int       `json:"pid"`
	UID    uint32    `json:"uid"`
	User   string    `json:"user,omitempty"`
	GID    uint32    `json:"gid"`
	Groups []uint32  `json:"groups"` // null where the OS does not report them
	Exe    string    `json:"exe,omitempty"`

	// What Cred.Attest read about the peer's process (Linux 6.5+), or
	// why it could not (AttestError).
	StartTime     uint64 `json:"start_time,omitempty"` // clock ticks after boot
	Unit          string `json:"unit,omitempty"`
	UserUnit      string `json:"user_unit,omitempty"`
	Cgroup        string `json:"cgroup,omitempty"`
	SystemdCgroup string `json:"systemd_cgroup,omitempty"` // cgroup v1 name=systemd, where it exists
	SHA256        string `json:"sha256,omitempty"`         // of the executable, with -sha256
	AttestError   string `json:"attest_error,omitempty"`
}

// describe gathers what is known about the peer of c. The credentials are
// the kernel's; the user name is looked up now, and may be missing. The
// executable, cgroup, unit and start time are what Cred.Attest reads (with
// opts) about the peer's process: where it cannot (another system, Linux
// before 6.5, a peer gone or out of our reach), AttestError says why, and
// the executable is looked up as before (see peerExe).
func describe(c *peercred.Conn, now time.Time, opts *peercred.AttestOptions) *peer {
	cred := c.Cred()
	groups, _ := cred.Groups() // read from c, which is open: nil, "?", if they cannot be
	p := &peer{
		Time:   now,
		PID:    cred.PID,
		UID:    cred.UID,
		User:   ids.UserName(cred.UID),
		GID:    cred.GID,
		Groups: groups,
	}
	proc, err := cred.Attest(opts)
	if err != nil {
		p.Exe = peerExe(c)
		p.AttestError = err.Error()
		return p
	}
	p.Exe = proc.Exe.Path
	p.StartTime = proc.StartTime
	p.Unit, p.UserUnit = proc.Unit, proc.UserUnit
	p.Cgroup = proc.Cgroup
	if proc.Cgroup == "/" && proc.SystemdCgroup != "" && proc.SystemdCgroup != "/" {
		// A legacy host: the unit comes from this hierarchy.
		p.SystemdCgroup = proc.SystemdCgroup
	}
	if proc.Exe.SHA256 != nil {
		p.SHA256 = hex.EncodeToString(proc.Exe.SHA256)
	}
	return p
}

// line formats p as
//
//	2026-11-23T13:20:01Z pid=4121 uid=1000(alice) gid=1000 groups=1000,27 exe=/usr/bin/nc start=81234 unit=foo.service cgroup=/system.slice/foo.service
//
// without the time when it is zero. Unknown groups or executable read "?",
// no supplementary groups or no unit "-". A user unit (user-unit=), the
// cgroup v1 name=systemd path (systemd-cgroup=) and the executable's
// SHA-256 (sha256=) follow the cgroup when known; when the process could
// not be attested, attest-error= replaces start, unit and cgroup.
func (p *peer) line() string {
	var b strings.Builder
	if !p.Time.IsZero() {
		b.WriteString(p.Time.Format(time.RFC3339))
		b.WriteByte(' ')
	}
	b.WriteString("pid=")
	b.WriteString(strconv.Itoa(p.PID))
	b.WriteString(" uid=")
	b.WriteString(strconv.FormatUint(uint64(p.UID), 10))
	if p.User != "" {
		b.WriteString("(" + safe(p.User) + ")")
	}
	b.WriteString(" gid=")
	b.WriteString(strconv.FormatUint(uint64(p.GID), 10))
	b.WriteString(" groups=")
	switch {
	case p.Groups == nil:
		b.WriteByte('?')
	case len(p.Groups) == 0:
		b.WriteByte('-')
	default:
		b.WriteString(ids.Join(p.Groups))
	}
	b.WriteString(" exe=")
	if p.Exe == "" {
		b.WriteByte('?')
	} else {
		b.WriteString(safe(p.Exe))
	}
	if p.AttestError != "" {
		b.WriteString(" attest-error=" + safe(p.AttestError))
		return b.String()
	}
	b.WriteString(" start=")
	b.WriteString(strconv.FormatUint(p.StartTime, 10))
	b.WriteString(" unit=")
	if p.Unit == "" {
		b.WriteByte('-')
	} else {
		b.WriteString(safe(p.Unit))
	}
	if p.UserUnit != "" {
		b.WriteString(" user-unit=" + safe(p.UserUnit))
	}
	b.WriteString(" cgroup=" + safe(p.Cgroup))
	if p.SystemdCgroup != "" {
		b.WriteString(" systemd-cgroup=" + safe(p.SystemdCgroup))
	}
	if p.SHA256 != "" {
		b.WriteString(" sha256=" + p.SHA256)
	}
	return b.String()
}

// safe returns s as it is when it is one word of printable UTF-8, and
// Go-quoted otherwise (see printable.Word): a peer chooses its executable's
// path (and, where it may create cgroups, its cgroup's), and a path with a
// newline must not forge a second line of our output, nor one with ESC or
// the 8-bit CSI (0x9b) speak to the terminal.
func safe(s string) string { return printable.Word(s) }

// print writes p to w as a line of text or of JSON.
func (p *peer) print(w io.Writer, asJSON bool) error {
	if asJSON {
		// encoding/json escapes C0 controls but not DEL, C1 controls
		// (U+009B) or format characters.
		b, err := json.Marshal(p)
		if err != nil {
			return err
		}
		_, err = w.Write(append(printable.JSON(b), '\n'))
		return err
	}
	_, err := io.WriteString(w, p.line()+"\n")
	return err
}
