//go:build unix && !linux

package testutil

// closeInheritedOnExec does nothing here: inherited descriptors that are not
// close-on-exec reach helpers.
func closeInheritedOnExec() {}
