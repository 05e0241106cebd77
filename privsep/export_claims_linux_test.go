package privsep

// OnceProcs drops what the supervisor remembers of processes that are gone
// and returns how many processes it still remembers Once operations for.
func OnceProcs(s *Supervisor) int { return s.once.count() }
