package confine_test

import (
	"context"
	"fmt"
	"log"
	"net/http"

	"github.com/peercred/peercred/privsep"
	"github.com/peercred/peercred/privsep/confine"
)

// A web worker confined to serving: no file but through the parent's
// broker, no socket but the listener it is given, no process, no way out.
// The parent checks it before handing it anything.
func ExampleConfig() {
	privsep.Register("example-confined", func(ctx context.Context, w *privsep.Worker) error {
		page, err := w.ReadFile("/srv/www/index.html") // the parent opens it
		if err != nil {
			return err
		}
		l, err := w.Listen(ctx, "tcp", "127.0.0.1:80") // bound by the parent
		if err != nil {
			return err
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { rw.Write(page) })}
		go func() { <-ctx.Done(); srv.Close() }()
		return srv.Serve(l)
	})
	privsep.Main()

	s := privsep.New(privsep.Config{Roles: map[string]privsep.Policy{
		"example-confined": {
			Files:  []privsep.PathRule{{Path: "/srv/www", Beneath: true}}, // read-only
			Listen: []privsep.ListenRule{{Network: "tcp", Address: "127.0.0.1:80", Once: true}},
		},
	}})
	defer s.Shutdown(context.Background())
	p, err := s.Spawn(context.Background(), privsep.Spec{
		Role: "example-confined", UID: 65534, GID: 65534,
		Confine: &confine.Config{
			// Promises: only stdio, the default. Landlock: no path.
			NoFile: 1024,
			NewNet: true, // the listener is the parent's: the worker needs no interface
		},
	})
	if err != nil {
		log.Fatal(err) // names what the kernel lacks, or what did not match
	}
	fmt.Println(p.Confinement())
}
