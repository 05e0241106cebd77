package privsep_test

import (
	"context"
	"errors"
	"log"
	"net/http"

	"github.com/peercred/peercred/privsep"
)

// A program that uses privsep builds for every system Go supports. On a
// system other than Linux, Main returns at once and Spawn (as Dial,
// ListenUnix and a Worker's calls) fails with an error that matches
// errors.ErrUnsupported: the program can then go on without privilege
// separation, knowingly, or refuse to run.
func Example_otherSystems() {
	privsep.Register("example-portable", func(ctx context.Context, w *privsep.Worker) error {
		l, err := w.Listen(ctx, "tcp", "127.0.0.1:8080")
		if err != nil {
			return err
		}
		return http.Serve(l, http.NotFoundHandler())
	})
	privsep.Main() // in a Linux worker, runs its role and exits; elsewhere returns

	s := privsep.New(privsep.Config{Roles: map[string]privsep.Policy{
		"example-portable": {Listen: []privsep.ListenRule{{Network: "tcp", Address: "127.0.0.1:8080"}}},
	}})
	defer s.Shutdown(context.Background())
	_, err := s.Spawn(context.Background(), privsep.Spec{Role: "example-portable", UID: 65534, GID: 65534})
	switch {
	case errors.Is(err, errors.ErrUnsupported):
		log.Printf("serving without privilege separation: %v", err)
		log.Fatal(http.ListenAndServe("127.0.0.1:8080", http.NotFoundHandler()))
	case err != nil:
		log.Fatal(err)
	}
}
