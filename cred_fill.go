//go:build !linux

package peercred

import "errors"

// groupsOnDemand: the groups, where the OS reports them, come with the
// other credentials, in one call.
const groupsOnDemand = false

// fillCred fills c from the per-OS peerCred, which checks the socket's
// domain whatever isUnix says.
func fillCred(fd int, c *Cred, isUnix bool) error {
	p, err := peerCred(fd)
	if err != nil {
		return err
	}
	*c = *p
	return nil
}

// peerGroups is never called where groupsOnDemand is false.
func peerGroups(fd int, dst []uint32) ([]uint32, error) {
	return nil, errors.ErrUnsupported
}
