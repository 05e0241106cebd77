package privsep_test

import (
	"context"
	"fmt"

	"github.com/peercred/peercred/privsep"
)

// Worker roles that tests all over the package use; the others are
// registered beside the tests that use them.
func init() {
	privsep.Register("sleep", func(ctx context.Context, w *privsep.Worker) error {
		fmt.Println("up")
		<-ctx.Done()
		return nil
	})
}
