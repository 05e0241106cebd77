package peercred

// ActivationListenerAt and ActivationListenersAt are ActivationListener and
// ActivationListeners with the descriptors numbered from first on instead of
// 3, so that tests can pass descriptors without taking over 3, 4, ... of the
// test process.
var (
	ActivationListenerAt  = (*ListenConfig).activationListener
	ActivationListenersAt = (*ListenConfig).activationListeners
)

// The limits of the refusal log, for the flood tests.
const (
	RefusalLogBurst    = refusalLogBurst
	RefusalLogInterval = refusalLogInterval
)
