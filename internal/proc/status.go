package proc

import (
	"bytes"
	"os"
	"strconv"
	"strings"
)

// Status is the text of a /proc/PID/status (or /proc/PID/task/TID/status)
// file. It is the one parser of those files in peercred. The kernel
// escapes the one field a process chooses (Name: a newline in it reads as
// "\n"), so that a process cannot add lines of its own.
type Status []byte

// ReadStatus reads the status file at path, for example
// "/proc/42/status".
func ReadStatus(path string) (Status, error) {
	b, err := os.ReadFile(path)
	return Status(b), err
}

// Field returns the value of the field name ("Uid", "NoNewPrivs", ...),
// without surrounding white space, and whether s has it.
func (s Status) Field(name string) (string, bool) {
	b := []byte(s)
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if len(line) > len(name) && line[len(name)] == ':' && string(line[:len(name)]) == name {
			return string(bytes.TrimSpace(line[len(name)+1:])), true
		}
	}
	return "", false
}

// IDs returns the numbers of the field name, a list of IDs separated by
// white space ("Uid": real, effective, saved and filesystem UID;
// "Groups": the supplementary groups). ok is false if the field is
// missing or holds anything but such a list.
func (s Status) IDs(name string) (ids []uint32, ok bool) {
	v, ok := s.Field(name)
	if !ok {
		return nil, false
	}
	for _, f := range strings.Fields(v) {
		id, err := strconv.ParseUint(f, 10, 32)
		if err != nil {
			return nil, false
		}
		ids = append(ids, uint32(id))
	}
	return ids, true
}
