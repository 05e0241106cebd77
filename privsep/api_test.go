package privsep_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/peercred/peercred/internal/apicheck"
)

// TestAPISameOnEverySystem checks that a program written against privsep
// (and its package confine) on Linux compiles on the other systems: every
// exported name, signature, field and constant is the same there
// (unsupported.go stands in for the operations, which fail with
// errors.ErrUnsupported). That the stubs type-check is `GOOS=... go vet
// ./...`'s part.
func TestAPISameOnEverySystem(t *testing.T) {
	for _, pkg := range []struct{ name, dir string }{{"privsep", "."}, {"confine", "./confine"}} {
		dir := pkg.dir
		t.Run(pkg.name, func(t *testing.T) {
			linux, err := apicheck.API(dir, "linux", "amd64")
			if err != nil {
				t.Fatal(err)
			}
			if len(linux) == 0 {
				t.Fatal("no exported API found for linux")
			}
			for _, goos := range apicheck.OtherSystems {
				t.Run(goos, func(t *testing.T) {
					got, err := apicheck.API(dir, goos, "amd64")
					if err != nil {
						t.Fatal(err)
					}
					if diff := cmp.Diff(linux, got); diff != "" {
						t.Errorf("exported API for %s differs from linux's (-linux +%s):\n%s", goos, goos, diff)
					}
				})
			}
		})
	}
}
