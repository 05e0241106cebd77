//go:build !unix

package peercred

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
)

func listenFile(ctx context.Context, network, path string, mode os.FileMode, uid, gid int) (*net.UnixListener, os.FileInfo, error) {
	return nil, nil, listenError(path, fmt.Errorf("peer credentials are not supported on %s: %w", runtime.GOOS, errors.ErrUnsupported))
}
