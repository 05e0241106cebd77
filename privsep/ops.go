//go:build linux

package privsep

import (
	"os"
	"strconv"
	"strings"

	"github.com/peercred/peercred/internal/wire"
	"golang.org/x/sys/unix"
)

// builtin is a built-in operation as the session dispatches it, in the
// spirit of OpenSSH's mon_table: the part of the role's [Policy] whose
// rules admit it, whether its request may carry descriptors, and its
// handler. User-defined operations ([Supervisor.Handle]) are admitted by
// [Policy.Ops].
type builtin struct {
	policy string // the Policy field whose rules admit it
	files  bool   // the request may carry descriptors
	// serve answers with a payload and descriptors: files, or one raw
	// descriptor fd (-1: none), which needs no *os.File.
	serve func(ss *session, req *Request) (payload []byte, files []*os.File, fd int, err error)
}

// Parts of a Policy that admit built-in operations.
const (
	policyFiles  = "Files"
	policyListen = "Listen"
)

// builtins are the built-in operations. None takes descriptors.
var builtins = map[string]builtin{
	wire.OpListen: {policy: policyListen, serve: (*session).listen},

	// Worker.Open, OpenFile, Create, ReadFile
	opFileOpen: {policy: policyFiles, serve: fileOp(needOpen, doOpen)},
	// Worker.Stat, Lstat, Access, Readlink
	opFileStat:     {policy: policyFiles, serve: fileOp(needRead, doStat)},
	opFileLstat:    {policy: policyFiles, serve: fileOp(needRead, doLstat)},
	opFileAccess:   {policy: policyFiles, serve: fileOp(needAccess, doAccess)},
	opFileReadlink: {policy: policyFiles, serve: fileOp(needRead, doReadlink)},
	// Worker.Mkdir, Remove, Rename
	opFileMkdir:  {policy: policyFiles, serve: fileOp(needCreate, doMkdir)},
	opFileRemove: {policy: policyFiles, serve: fileOp(needCreate, doRemove)},
	opFileRename: {policy: policyFiles, serve: fileOp(needCreate, doRename)},
}

// reservedOp reports whether op is not for [Supervisor.Handle]: a built-in
// operation, or a name kept for one.
func reservedOp(op string) bool {
	_, ok := builtins[op]
	return ok || op == "open" || strings.HasPrefix(op, "file.")
}

// closeFD closes fd unless it is -1.
func closeFD(fd int) {
	if fd >= 0 {
		unix.Close(fd)
	}
}

// onceKey names rule i of a policy's part, for the Once operations used.
func onceKey(part string, i int) string { return part + ":" + strconv.Itoa(i) }
