package privsep_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"os"

	"github.com/peercred/peercred/privsep"
)

// A minimal privilege-separated program: the root parent binds port 80 and
// opens a root-only file for an unprivileged "web" worker, which asks for
// both. In a real program, privsep.Register and privsep.Main come first in
// main.
func Example() {
	privsep.Register("example-web", func(ctx context.Context, w *privsep.Worker) error {
		secret, err := w.Open("/etc/app/secret")
		if err != nil {
			return err
		}
		secret.Close()
		l, err := w.Listen(ctx, "tcp", "127.0.0.1:80")
		if err != nil {
			return err
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(rw, "served by uid %d\n", os.Getuid())
		})}
		go func() { <-ctx.Done(); srv.Close() }()
		return srv.Serve(l)
	})
	privsep.Main() // in a worker, runs its role and exits

	s := privsep.New(privsep.Config{Roles: map[string]privsep.Policy{
		"example-web": {
			Files:  []privsep.PathRule{{Path: "/etc/app/secret", Once: true}},
			Listen: []privsep.ListenRule{{Network: "tcp", Address: "127.0.0.1:80", Once: true}},
		},
	}})
	defer s.Shutdown(context.Background())
	_, err := s.Spawn(context.Background(), privsep.Spec{
		Role: "example-web", UID: 65534, GID: 65534,
		Restart: privsep.RestartOnFailure,
	})
	if err != nil {
		log.Fatal(err)
	}
}
