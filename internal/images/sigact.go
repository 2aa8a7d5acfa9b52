package images

// A task core's sigactions list, as CRIU lays it out: one entry per signal
// from 1 to 64 except SIGKILL and SIGSTOP, whose handlers cannot change (62
// entries; CRIU refuses any other count).
const (
	SigMax        = 64
	NumSigactions = SigMax - 2
)

const (
	sigKill = 9
	sigStop = 19
)

// SigactionSignals returns the signal number of each entry of a core's
// sigactions, in order.
func SigactionSignals() []int {
	out := make([]int, 0, NumSigactions)
	for sig := 1; sig <= SigMax; sig++ {
		if sig != sigKill && sig != sigStop {
			out = append(out, sig)
		}
	}
	return out
}

// SigactionIndex returns the index of signal sig in a core's sigactions, or
// -1 for SIGKILL, SIGSTOP and numbers outside 1 to 64.
func SigactionIndex(sig int) int {
	switch {
	case sig < 1 || sig > SigMax || sig == sigKill || sig == sigStop:
		return -1
	case sig > sigStop:
		return sig - 3
	case sig > sigKill:
		return sig - 2
	}
	return sig - 1
}
