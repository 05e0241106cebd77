package wire_test

import (
	"fmt"

	"github.com/peercred/peercred/internal/wire"
)

func Example() {
	lim := wire.DefaultLimits

	// The worker asks the parent to open a file.
	req := wire.Msg{Kind: wire.KindRequest, ID: 1, Op: wire.OpFileOpen, Payload: wire.AppendFile(nil, &wire.FileRequest{Path: "/etc/hosts"})}
	datagram, err := wire.Append(nil, &req, lim)
	if err != nil {
		panic(err)
	}

	// The parent decodes the datagram, which arrived with no descriptors.
	m, err := wire.Decode(datagram, 0, lim)
	if err != nil {
		panic(err) // a real parent disconnects the worker
	}
	fr, err := wire.DecodeFile(m.Payload)
	fmt.Println(m.Kind, m.ID, m.Op, fr.Path, fr.Flag, err)

	// A worker that claims descriptors that never arrived broke the protocol.
	_, err = wire.Decode(datagram, 1, lim)
	fmt.Println(err)
	// Output:
	// Request 1 file.open /etc/hosts 0 <nil>
	// wire: nfds 0 in header, 1 arrived
}
