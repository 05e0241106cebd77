//go:build !unix || solaris || aix

package peercred

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
)

// socketFile is the socket file Listen created; there is none here.
type socketFile struct{}

func (*socketFile) remove() error { return nil }

func listenFile(ctx context.Context, network, path string, mode os.FileMode, uid, gid int) (*net.UnixListener, *socketFile, error) {
	return nil, nil, listenError(path, fmt.Errorf("peer credentials are not supported on %s: %w", runtime.GOOS, errors.ErrUnsupported))
}

func checkPathLen(addr string) error { return nil }

func explainDial(addr string, err error) error { return err }
