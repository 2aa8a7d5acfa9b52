package restore

import "github.com/gockpt/gockpt/internal/ptrace"

// startRunner points g at the runner (blob/runner.S) at pc with its list of
// n entries at list: the runner takes the list in r12, the count in r13.
func startRunner(g *ptrace.Regs, pc, list, n uint64) {
	g.Rip, g.R12, g.R13 = pc, list, n
}

// runnerLeft returns how many entries of its list the runner did not run,
// from the registers it stopped with at its int3 (r13).
func runnerLeft(r *ptrace.Regs) uint64 { return r.R13 }
