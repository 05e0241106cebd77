package privsep_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/peercred/peercred"
	"github.com/peercred/peercred/internal/wire"
	"github.com/peercred/peercred/privsep"
	"github.com/peercred/peercred/testutil"
	"golang.org/x/sys/unix"
)

// Attack: privsep.Dial trusts whoever serves the socket. A local user binds
// the abstract name first and answers the protocol: a welcome, then a reply
// to Open carrying a descriptor of its own.

func init() {
	// squatter listens on the abstract name args[0] and answers every
	// connection as a supervisor would: a welcome for the hello, and for
	// each request a reply with a pipe that reads "from the squatter".
	testutil.Register("squatter", func(args []string) int {
		l, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: args[0], Net: "unixpacket"})
		if err != nil {
			fmt.Println("listen:", err)
			return 1
		}
		defer l.Close()
		fmt.Println("ready")
		for {
			c, err := l.AcceptUnix()
			if err != nil {
				return 1
			}
			go squat(c)
		}
	})
}

func squat(c *net.UnixConn) {
	defer c.Close()
	lim := wire.DefaultLimits
	buf := make([]byte, lim.BufferSize())
	send := func(m *wire.Msg, fds ...int) error {
		m.NFiles = len(fds)
		b, err := wire.Append(nil, m, lim)
		if err != nil {
			return err
		}
		var oob []byte
		if len(fds) > 0 {
			oob = unix.UnixRights(fds...)
		}
		_, _, err = c.WriteMsgUnix(b, oob, nil)
		return err
	}
	for {
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		m, err := wire.Decode(buf[:n], 0, lim)
		if err != nil {
			return
		}
		switch m.Kind {
		case wire.KindHello:
			p := make([]byte, 8)
			binary.LittleEndian.PutUint32(p[0:], uint32(lim.MaxPayload))
			binary.LittleEndian.PutUint32(p[4:], uint32(lim.MaxFiles))
			if send(&wire.Msg{Kind: wire.KindWelcome, Payload: p}) != nil {
				return
			}
		case wire.KindRequest:
			r, w, err := os.Pipe()
			if err != nil {
				return
			}
			w.WriteString("from the squatter")
			w.Close()
			err = send(&wire.Msg{Kind: wire.KindReply, ID: m.ID, Payload: wire.AppendFileResult(nil, 0, nil)}, int(r.Fd()))
			r.Close()
			if err != nil {
				return
			}
		}
	}
}

// TestAttackDialSquatter: a root client's Dial refuses a server run by
// another user (the squatter of an abstract name) before it sends anything,
// naming its pid and uid; a Dialer told to trust that user gets through.
func TestAttackDialSquatter(t *testing.T) {
	requireRoot(t, "the squatter is another user than the client")
	name := fmt.Sprintf("@peercred-squat-%d-%d", os.Getpid(), time.Now().UnixNano())
	sq := testutil.Start(t, "squatter", testutil.Options{Args: []string{name}, As: &testutil.User{UID: 1234, GID: 1234}})
	if line := sq.Line(t); line != "ready" {
		t.Fatalf("squatter: %q", line)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	w, err := privsep.Dial(ctx, name, "web")
	if err == nil {
		defer w.Close()
		f, oerr := w.Open("/etc/shadow")
		if oerr == nil {
			b, _ := io.ReadAll(f)
			f.Close()
			t.Fatalf("a root client's Open returned the squatter's descriptor: %q", b)
		}
		t.Fatalf("Dial admitted a server run by uid 1234 (Open: %v)", oerr)
	}
	t.Logf("Dial: %v", err)
	if !errors.Is(err, peercred.ErrUnauthorized) {
		t.Errorf("Dial: %v, want an error wrapping peercred.ErrUnauthorized", err)
	}
	for _, want := range []string{fmt.Sprintf("pid %d", sq.PID()), "uid 1234"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Dial: %v, want it to name %q", err, want)
		}
	}

	d := privsep.Dialer{Authorize: peercred.AllowUIDs(1234)}
	w, err = d.Dial(ctx, name, "web")
	if err != nil {
		t.Fatalf("Dialer trusting uid 1234: %v", err)
	}
	defer w.Close()
	f, err := w.Open("/anything")
	if err != nil {
		t.Fatalf("Open through the trusted server: %v", err)
	}
	b, _ := io.ReadAll(f)
	f.Close()
	if string(b) != "from the squatter" {
		t.Errorf("Open through the trusted server: %q", b)
	}
}
