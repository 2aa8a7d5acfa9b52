package restore

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/log"
)

// sigDfl is SIG_DFL in a sigaction entry.
const sigDfl = 0

// stopSignal is the signal that puts a restored task back into its
// group-stop: its own stop signal (so the parent's waitpid(WUNTRACED)
// reports the same WSTOPSIG), unless that signal would not stop it now: a
// handler catches it, or every thread blocks it. SIGSTOP always stops.
func stopSignal(t *Task) unix.Signal {
	tc := t.Core().GetTc()
	sig := int(tc.GetStopSigno())
	switch unix.Signal(sig) {
	case unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU:
	default:
		return unix.SIGSTOP
	}
	if i := images.SigactionIndex(sig); i >= 0 && i < len(tc.GetSigactions()) && tc.GetSigactions()[i].GetSigaction() != sigDfl {
		return unix.SIGSTOP
	}
	bit := uint64(1) << (sig - 1)
	for _, c := range t.Cores {
		if c.GetThreadCore().GetBlkSigset()&bit == 0 {
			return unix.Signal(sig)
		}
	}
	return unix.SIGSTOP
}

// detachIntoStop lets a task that was stopped by job control go, stopped
// again as CRIU leaves it: its stop signal is queued to the process, as
// kill(2) sends it, and each thread joins the group-stop once detached.
func (rs *restorer) detachIntoStop(l *live) error {
	sig := stopSignal(l.t)
	if want := l.t.Core().GetTc().GetStopSigno(); uint32(sig) != want {
		log.Infof("task %d: stopped by signal %d when dumped; stopped with %v now, as signal %d would not stop it", l.t.Pid, want, sig, want)
	}
	if err := unix.Kill(l.t.Pid, sig); err != nil {
		return fmt.Errorf("task %d: kill(%v) to leave it stopped as it was dumped: %w", l.t.Pid, sig, err)
	}
	for _, te := range l.threads {
		if err := te.DetachIntoStop(); err != nil {
			return err
		}
	}
	return nil
}
