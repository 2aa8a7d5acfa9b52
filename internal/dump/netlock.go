package dump

import (
	"fmt"
	"strconv"

	"github.com/gockpt/gockpt/internal/files"
	"github.com/gockpt/gockpt/internal/log"
	"github.com/gockpt/gockpt/internal/netlock"
	"github.com/gockpt/gockpt/internal/ptrace"
)

// Network locks, as CRIU spells --network-lock.
const (
	NetworkLockNftables = "nftables"
	NetworkLockSkip     = "skip"
)

// lockID names the network lock of the tree rooted at pid: restore, which
// knows the root's PID from the images, lifts the same one.
func lockID(pid int) string { return strconv.Itoa(pid) }

// lockNetwork drops the packets of the tree's established connections
// (--tcp-established) from now until restore lets them go, so that the
// peer's retransmissions never meet a closed socket and get a reset. It
// runs on the frozen tree, before any socket is put in repair mode.
func (d *dumper) lockNetwork() error {
	if !d.opts.TCPEstablished || d.opts.TCPClose {
		return nil
	}
	refs, err := d.files.TCPConnections()
	if err != nil {
		return err
	}
	if len(refs) == 0 {
		return nil
	}
	if d.opts.NetworkLock == NetworkLockSkip {
		log.Infof("%d established connections, not locked (--network-lock skip)", len(refs))
		return d.readStreams(refs)
	}
	conns := make([]netlock.Conn, len(refs))
	for i, r := range refs {
		conns[i] = r.Conn
	}
	id := lockID(d.opts.Pid)
	// The watchdog hears of the lock first: if gockpt dies from here on,
	// it lifts it.
	if err := d.watchdog.NetLock(netlock.TablePrefix + id); err != nil {
		files.CloseRefs(refs)
		return err
	}
	if err := netlock.Lock(id, conns); err != nil {
		files.CloseRefs(refs)
		return fmt.Errorf("network lock of %d established connections: %w (dump without the lock with --network-lock skip, if nothing can reach them meanwhile)", len(conns), err)
	}
	d.netLocked = true
	log.Infof("network locked: nftables table inet %s%s drops the packets of %d connections", netlock.TablePrefix, id, len(conns))
	return d.readStreams(refs)
}

// readStreams reads the connections with every thread of the tree parked:
// should gockpt die while a socket is in repair mode, no thread runs its
// own code (and meets the socket failing) before the watchdog has taken
// the socket out of repair mode.
func (d *dumper) readStreams(refs []files.TCPRef) error {
	unpark, err := d.parkAll()
	if err != nil {
		return err
	}
	err = d.files.ReadStreams(refs)
	if uerr := unpark(); err == nil {
		err = uerr
	}
	return err
}

// parkAll parks every thread of the tree (ptrace Park) and returns how to
// put them back.
func (d *dumper) parkAll() (func() error, error) {
	var parked []*ptrace.Tracee
	unpark := func() error {
		var first error
		for _, te := range parked {
			if err := te.Unpark(); err != nil && first == nil {
				first = fmt.Errorf("task %d thread %d: %w", te.Tgid, te.Tid, err)
			}
		}
		return first
	}
	for _, t := range d.tree.Tasks() {
		if t.Zombie {
			continue
		}
		for _, te := range t.Threads {
			if te.GroupStopped {
				continue // it stays stopped whatever happens
			}
			ok, err := te.Park()
			if err != nil {
				unpark()
				return nil, fmt.Errorf("task %d thread %d: %w", t.Pid, te.Tid, err)
			}
			if ok {
				parked = append(parked, te)
			}
		}
	}
	return unpark, nil
}

// unlockNetwork lets the connections go again, after a dump that failed
// or leaves the tree running: the lock goes first, then repair mode, so
// that the window probe of each socket reaches its peer.
func (d *dumper) unlockNetwork() error {
	var first error
	if d.netLocked {
		if err := netlock.Unlock(lockID(d.opts.Pid)); err != nil {
			log.Errorf("network unlock: %v", err)
			first = err
		}
		d.netLocked = false
	}
	if err := d.files.EndRepair(); err != nil && first == nil {
		first = err
	}
	return first
}
