package peercred_test

import (
	"context"
	"log"

	"github.com/peercred/peercred"
)

// A socket for one program of one user: the peer must run as uid 1000 and
// be started from /usr/local/bin/app-client itself (the file, not a
// program at that path in some mount namespace).
func ExampleExecutables() {
	lc := peercred.ListenConfig{
		Mode: 0666,
		Authorize: peercred.AllOf(
			peercred.AllowUIDs(1000),
			peercred.AllowExecutables("/usr/local/bin/app-client"),
			// Or, for clients in containers whose files you trust:
			// peercred.Executables{Paths: []string{"/usr/local/bin/app-client"}, AnyMountNamespace: true}.Authorizer(),
		),
	}
	l, err := lc.Listen(context.Background(), "/run/app/app.sock")
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
}
