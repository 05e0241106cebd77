package privsep

import (
	"os"

	"github.com/peercred/peercred/internal/scm"
)

// RawWrite sends b with files on the worker's connection as they are, so a
// test can play a worker that breaks the protocol.
func RawWrite(w *Worker, b []byte, files ...*os.File) error {
	if len(files) == 0 {
		return w.mc.send(b, nil)
	}
	return scm.WithFDs(files, func(fds []int) error { return w.mc.send(b, scm.Rights(fds...)) })
}

// StallReader stops w from reading its connection: it plays a worker that
// no longer reads its socket. (It takes the reader's turn and never reads.)
func StallReader(w *Worker) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.rd.take()
}
