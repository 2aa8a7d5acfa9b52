package restore

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/gockpt/gockpt/internal/log"
	"github.com/gockpt/gockpt/internal/netlock"
)

// lockNetwork takes the network lock of the connections restore makes in
// repair mode before it makes any (a dump's lock of the same tree, still
// there, is taken over): until the tree runs, their peers' packets must
// meet no socket that would answer with a reset. It tells whether the
// lock is restore's own (no dump's lock was there), to be lifted if the
// restore fails.
func (rs *restorer) lockNetwork() error {
	conns := rs.opener.TCPConnections()
	if len(conns) == 0 || rs.opts.NetworkLock == "skip" {
		return nil
	}
	id := strconv.Itoa(rs.plan.Root.Pid)
	tables, err := netlock.Tables()
	if err != nil {
		return err
	}
	rs.netLockOwn = !slices.Contains(tables, netlock.TablePrefix+id)
	if err := netlock.Lock(id, conns); err != nil {
		return fmt.Errorf("network lock of %d established connections: %w (restore without the lock with --network-lock skip, if nothing can reach them meanwhile)", len(conns), err)
	}
	rs.netLocked = true
	return nil
}

// unlockNetwork lets the connections go just before the tree runs: the
// lock (the dump's, taken over) goes, then repair mode, whose window
// probes tell each peer where its connection stands.
func (rs *restorer) unlockNetwork() error {
	if err := rs.liftLock(); err != nil {
		return err
	}
	return rs.opener.EndRepair()
}

// liftLock removes the network lock of the tree, if there is one: after
// a restore, or, for restore's own lock, a failed one. A dump's lock
// stays after a failed restore: the next restore needs it.
func (rs *restorer) liftLock() error {
	id := strconv.Itoa(rs.plan.Root.Pid)
	if !rs.netLocked && rs.opts.NetworkLock != "skip" {
		// A dump's lock with no connection left to make (--tcp-close).
		tables, err := netlock.Tables()
		if err != nil || !slices.Contains(tables, netlock.TablePrefix+id) {
			return nil
		}
	}
	if err := netlock.Unlock(id); err != nil {
		return fmt.Errorf("network unlock: %w", err)
	}
	if rs.netLocked {
		log.Infof("network unlocked (nftables table inet %s%s)", netlock.TablePrefix, id)
	}
	rs.netLocked = false
	return nil
}
