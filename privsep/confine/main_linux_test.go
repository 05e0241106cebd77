package confine_test

import (
	"context"
	"os"
	"testing"

	"github.com/peercred/peercred/privsep"
)

// The examples' worker roles: this test binary is also the workers' binary.
func init() {
	privsep.Register("example-idle", func(ctx context.Context, w *privsep.Worker) error {
		<-ctx.Done() // until the parent stops it
		return nil
	})
}

func TestMain(m *testing.M) {
	privsep.Main() // in a worker, runs its role and exits
	os.Exit(m.Run())
}
