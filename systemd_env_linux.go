package peercred

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// activationEnv is what the activator said, read from the environment.
type activationEnv struct {
	pid, fds, names             string
	havePID, haveFDs, haveNames bool
}

// takeActivationEnv reads the activation variables and unsets them.
func takeActivationEnv() activationEnv {
	var e activationEnv
	e.pid, e.havePID = os.LookupEnv(envListenPID)
	e.fds, e.haveFDs = os.LookupEnv(envListenFDs)
	e.names, e.haveNames = os.LookupEnv(envListenFDNames)
	os.Unsetenv(envListenPID)
	os.Unsetenv(envListenFDs)
	os.Unsetenv(envListenFDNames)
	return e
}

// count returns how many descriptors the activator passed to the process
// pid. An error means no descriptor may be touched: there are none, they are
// another process's, or their number is unknown.
func (e *activationEnv) count(pid int) (int, error) {
	switch {
	case !e.havePID && !e.haveFDs:
		return 0, fmt.Errorf("%s and %s are not set: %w", envListenPID, envListenFDs, ErrNotActivated)
	case !e.havePID:
		return 0, fmt.Errorf("%s=%s is set but %s is not, so the descriptors may be another process's: %w",
			envListenFDs, e.fds, envListenPID, ErrNotActivated)
	}
	p, err := strconv.Atoi(e.pid)
	if err != nil || p <= 0 {
		return 0, fmt.Errorf("%s=%q is not a process ID", envListenPID, e.pid)
	}
	if p != pid {
		return 0, fmt.Errorf("%s=%d is another process, not this one (pid %d): %w", envListenPID, p, pid, ErrNotActivated)
	}
	if !e.haveFDs {
		return 0, fmt.Errorf("%s=%d is this process but %s is not set: %w", envListenPID, p, envListenFDs, ErrNotActivated)
	}
	n, err := strconv.Atoi(e.fds)
	if err != nil || n < 0 || n > maxActivationFDs {
		return 0, fmt.Errorf("%s=%q is not a number of descriptors (0 to %d)", envListenFDs, e.fds, maxActivationFDs)
	}
	if n == 0 {
		return 0, fmt.Errorf("%s=0: %w", envListenFDs, ErrNotActivated)
	}
	return n, nil
}

// maxActivationFDs bounds LISTEN_FDS: a larger number is surely not a count
// of descriptors, and the descriptor numbers must not overflow.
const maxActivationFDs = 1 << 20

// fdNames returns the name of each of the n descriptors from first on.
func (e *activationEnv) fdNames(first, n int) ([]string, error) {
	if !e.haveNames {
		names := make([]string, n)
		for i := range names {
			names[i] = UnnamedSocket
		}
		return names, nil
	}
	names := strings.Split(e.names, ":")
	if len(names) != n {
		return nil, fmt.Errorf("%s=%d but %s has %d names (%q)", envListenFDs, n, envListenFDNames, len(names), e.names)
	}
	for i, name := range names {
		if name == "" {
			return nil, fmt.Errorf("%s=%q: name %d (of fd %d) is empty", envListenFDNames, e.names, i+1, first+i)
		}
	}
	return names, nil
}
