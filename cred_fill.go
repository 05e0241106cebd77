//go:build !linux

package peercred

// fillCred fills c from the per-OS peerCred.
func fillCred(fd int, c *Cred) error {
	p, err := peerCred(fd)
	if err != nil {
		return err
	}
	*c = *p
	return nil
}
