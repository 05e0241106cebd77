package privsep

import "golang.org/x/sys/unix"

// RawShutdownWrite shuts the worker's side of its connection down for
// writing, as a hostile worker may: the parent's reader reads end of file
// while the worker still holds the socket.
func RawShutdownWrite(w *Worker) error {
	fd, err := w.mc.sk.get()
	if err != nil {
		return err
	}
	defer w.mc.sk.put()
	return unix.Shutdown(fd, unix.SHUT_WR)
}
