package peercred

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/peercred/peercred/internal/ratelog"
)

// A listener logs the first refusalLogBurst refusals of each peer UID in an
// interval of refusalLogInterval in full; of the others it logs how many
// there were, in one line per interval and UID, and at Close. A local user
// who connects in a loop cannot flood the log.
const (
	refusalLogBurst    = 5
	refusalLogInterval = 10 * time.Second
)

// refusalLog rate-limits a Listener's log lines about refused peers, per
// peer UID. The zero value is ready; Close reports what it still counts.
type refusalLog struct {
	once sync.Once
	lim  ratelog.Limiter[uint32]
}

func (r *refusalLog) init(l *Listener) {
	r.once.Do(func() {
		r.lim.Burst = refusalLogBurst
		r.lim.Interval = refusalLogInterval
		r.lim.Summary = func(uid uint32, dropped uint64) {
			l.log().LogAttrs(context.Background(), slog.LevelWarn, "peercred: refusals not logged",
				slog.String("addr", l.addr.Name),
				slog.Uint64("uid", uint64(uid)),
				slog.Uint64("dropped", dropped),
				slog.Duration("interval", refusalLogInterval))
		}
	})
}

// logRefusal logs that the Authorizer refused the peer cred for reason,
// unless that peer's UID has had its share of lines already.
func (l *Listener) logRefusal(ctx context.Context, cred *Cred, reason error) {
	l.refusals.init(l)
	if !l.refusals.lim.Allow(cred.UID) {
		return
	}
	l.log().LogAttrs(ctx, slog.LevelWarn, "peercred: peer refused",
		slog.String("addr", l.addr.Name),
		slog.Int("pid", cred.PID),
		slog.Uint64("uid", uint64(cred.UID)),
		slog.Uint64("gid", uint64(cred.GID)),
		slog.String("reason", reason.Error()))
}

// closeRefusalLog logs the refusals counted and not yet reported.
func (l *Listener) closeRefusalLog() {
	l.refusals.init(l)
	l.refusals.lim.Close()
}
