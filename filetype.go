package peercred

import "io/fs"

// fileType names the type of a file in words, for messages: "a directory",
// "a regular file", "a symbolic link", ... (a mode such as d--------- reads
// as "no permissions" to most people).
func fileType(m fs.FileMode) string {
	switch m.Type() {
	case 0:
		return "a regular file"
	case fs.ModeDir:
		return "a directory"
	case fs.ModeSymlink:
		return "a symbolic link"
	case fs.ModeNamedPipe:
		return "a FIFO"
	case fs.ModeSocket:
		return "a socket"
	case fs.ModeDevice:
		return "a block device"
	case fs.ModeDevice | fs.ModeCharDevice:
		return "a character device"
	}
	return "a file of type " + m.Type().String()
}
