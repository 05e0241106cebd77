//go:build unix && !linux

package peercred

import (
	"path/filepath"

	"golang.org/x/sys/unix"
)

// dirOpenFlags opens the directories openDir walks. These systems have no
// O_PATH in golang.org/x/sys: a directory on the path must be readable by
// the caller, not only searchable.
const dirOpenFlags = unix.O_RDONLY

// dirAddr is the address through which bind(2) and connect(2) reach name in
// the directory dir. These systems cannot bind relative to a descriptor
// (FreeBSD's bindat is not used yet), so it is the path: the one step of
// Listen whose path a user who owns a directory on it can still redirect.
// The checks made afterwards through dir then fail and Listen returns an
// error, but the socket made elsewhere stays there; stale-socket removal,
// chmod, chown, link and the removal on Close go through dir and stay in
// it.
func dirAddr(_ int, dirPath string, name string) string {
	return filepath.Join(dirPath, name)
}

// bindError explains an error of bind or connect through dirAddr.
func bindError(err error) error { return err }

// readSymlink reads the symlink name in dir and says who owns it. ok is
// false when name is not a symlink. Without O_PATH the link is looked at
// twice, by name: a user who can write dir can swap it between the two.
func readSymlink(dir int, name string) (target string, owner uint32, ok bool, err error) {
	var st unix.Stat_t
	if err := unix.Fstatat(dir, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return "", 0, false, err
	}
	if uint32(st.Mode)&unix.S_IFMT != unix.S_IFLNK {
		return "", 0, false, nil
	}
	target, err = readlinkAt(dir, name)
	return target, st.Uid, err == nil, err
}
