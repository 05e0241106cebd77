package privsep

import "os"

// RawWrite sends b with files on the worker's connection as they are, so a
// test can play a worker that breaks the protocol.
func RawWrite(w *Worker, b []byte, files ...*os.File) error {
	if len(files) == 0 {
		_, err := w.mc.c.Write(b)
		return err
	}
	_, err := w.mc.c.WriteWithFiles(b, files...)
	return err
}

// StallReader stops w's reader from delivering anything more: it plays a
// worker that no longer reads its socket.
func StallReader(w *Worker) { w.mu.Lock() }
