package main

import (
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
}

// describe gathers what is known about the peer of c. The credentials are
// the kernel's; the user name and executable are looked up now, and may be
// missing.
func describe(c *peercred.Conn, now time.Time) *peer {
	cred := c.Cred()
	groups, _ := cred.Groups() // read from c, which is open: nil, "?", if they cannot be
	return &peer{
		Time:   now,
		PID:    cred.PID,
		UID:    cred.UID,
		User:   ids.UserName(cred.UID),
		GID:    cred.GID,
		Groups: groups,
		Exe:    peerExe(c),
	}
}

// line formats p as
//
//	2026-11-23T13:20:01Z pid=4121 uid=1000(alice) gid=1000 groups=1000,27 exe=/usr/bin/nc
//
// without the time when it is zero. Unknown groups or executable read "?",
// no supplementary groups "-".
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
	return b.String()
}

// safe returns s as it is when it is one word of printable UTF-8, and
// Go-quoted otherwise (see printable.Word): a peer chooses its executable's
// path, and a path with a newline must not forge a second line of our
// output, nor one with ESC or the 8-bit CSI (0x9b) speak to the terminal.
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
