package confine_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/peercred/peercred/privsep"
	"github.com/peercred/peercred/privsep/confine"
)

// A confined worker, and what its parent verified of it before admitting
// it. (Run as root, the worker runs as nobody; otherwise as the user who
// runs the example: a parent that is not root spawns workers only as
// itself.)
func Example() {
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	if uid == 0 {
		uid, gid = 65534, 65534
	}
	s := privsep.New(privsep.Config{})
	defer s.Shutdown(context.Background())
	p, err := s.Spawn(context.Background(), privsep.Spec{
		Role: "example-idle", UID: uid, GID: gid,
		Confine: &confine.Config{
			NoFile:     64,
			BestEffort: true, // the Landlock this kernel has, if any
		},
	})
	if err != nil {
		log.Fatal(err) // what did not match, or what the kernel lacks
	}
	v := p.Confinement()
	fmt.Println("no_new_privs on every thread:", v.NoNewPrivs)
	fmt.Println("seccomp filter on every thread:", v.Seccomp)
	fmt.Println("open files:", v.NoFile)
	fmt.Println("core dumps:", v.Core)
	// Output:
	// no_new_privs on every thread: true
	// seccomp filter on every thread: true
	// open files: 64
	// core dumps: 0
}
