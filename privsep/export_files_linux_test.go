package privsep

import "github.com/peercred/peercred/internal/wire"

// BrokerFlood sends n broker requests (stat of path) over the transport
// Worker.Open and the other file methods use, and never reads a reply: it plays a worker that stops
// reading its broker's replies. It returns when the requests are sent or a
// send fails. The worker's reader is stalled for good (StallReader).
func BrokerFlood(w *Worker, path string, n int) error {
	StallReader(w)
	req := wire.AppendFile(nil, &wire.FileRequest{Path: path})
	for i := range n {
		b, err := wire.Append(nil, &wire.Msg{Kind: wire.KindRequest, ID: uint32(i + 1), Op: opFileStat, Payload: req}, w.mc.lim)
		if err != nil {
			return err
		}
		if err := w.mc.send(b, nil); err != nil {
			return err
		}
	}
	return nil
}
