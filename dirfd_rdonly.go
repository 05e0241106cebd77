//go:build unix && !linux && !solaris && !aix

package peercred

import "golang.org/x/sys/unix"

// dirOpenFlags opens the directories openDir walks. These systems have no
// O_PATH in golang.org/x/sys: every directory on the path must be readable
// by the caller, not only searchable.
const dirOpenFlags = unix.O_RDONLY

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
