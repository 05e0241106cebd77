// Package ids parses user and group IDs given on the command line, by number
// or by name, and names them back for output. It serves the commands under
// cmd/ only.
package ids

import (
	"fmt"
	"os/user"
	"strconv"
	"strings"
)

// Kind says whether a [List] holds user or group IDs.
type Kind int

const (
	Users  Kind = iota // user IDs: numbers or user names
	Groups             // group IDs: numbers or group names
)

// List is a flag.Value that collects IDs. It may be given several times, and
// each value may hold several IDs separated by commas; an ID is a number or,
// where the system knows it, a user or group name.
type List struct {
	Kind Kind
	IDs  []uint32
}

// String returns the IDs as "1000,27".
func (l *List) String() string {
	if l == nil {
		return ""
	}
	return Join(l.IDs)
}

// Set adds the IDs in s.
func (l *List) Set(s string) error {
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			return fmt.Errorf("empty ID in %q", s)
		}
		var id uint32
		var err error
		if l.Kind == Groups {
			id, err = GID(f)
		} else {
			id, _, err = UID(f)
		}
		if err != nil {
			return err
		}
		l.IDs = append(l.IDs, id)
	}
	return nil
}

// UID resolves a user name or number. For a number it also returns the
// user's primary group from the user database, or the same number when the
// user has no entry there.
func UID(s string) (uid, gid uint32, err error) {
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		uid, gid = uint32(n), uint32(n)
		if u, err := user.LookupId(s); err == nil {
			if g, err := strconv.ParseUint(u.Gid, 10, 32); err == nil {
				gid = uint32(g)
			}
		}
		return uid, gid, nil
	}
	u, err := user.Lookup(s)
	if err != nil {
		return 0, 0, fmt.Errorf("user %q: %w", s, err)
	}
	un, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("user %q has uid %q, not a number", s, u.Uid)
	}
	gn, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("user %q has gid %q, not a number", s, u.Gid)
	}
	return uint32(un), uint32(gn), nil
}

// GID resolves a group name or number.
func GID(s string) (uint32, error) {
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return uint32(n), nil
	}
	g, err := user.LookupGroup(s)
	if err != nil {
		return 0, fmt.Errorf("group %q: %w", s, err)
	}
	n, err := strconv.ParseUint(g.Gid, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("group %q has gid %q, not a number", s, g.Gid)
	}
	return uint32(n), nil
}

// UserName returns the name of uid in the user database, or "" when it has
// none.
func UserName(uid uint32) string {
	u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10))
	if err != nil {
		return ""
	}
	return u.Username
}

// WithName formats uid as "1000(alice)", or "1000" when it has no name.
func WithName(uid uint32) string {
	s := strconv.FormatUint(uint64(uid), 10)
	if name := UserName(uid); name != "" {
		s += "(" + name + ")"
	}
	return s
}

// Join formats ids as "1000,27".
func Join(ids []uint32) string {
	var b strings.Builder
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatUint(uint64(id), 10))
	}
	return b.String()
}
