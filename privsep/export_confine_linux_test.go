package privsep

// EnvConfine is the environment variable that passes a Confine to a worker:
// a test worker that unsets it before Main skips its confinement.
const EnvConfine = envConfine

// BrokerChannelWrite sends b as it is on the worker's broker channel (opened
// if need be), so a test can play a worker that breaks the protocol there.
func BrokerChannelWrite(w *Worker, b []byte) error {
	ch := w.brokerChan()
	if ch == nil {
		return ErrDenied
	}
	_, err := ch.f.Write(b)
	return err
}
