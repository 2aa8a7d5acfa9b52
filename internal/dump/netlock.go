package dump

import (
	"fmt"
	"strconv"

	"github.com/gockpt/gockpt/internal/log"
	"github.com/gockpt/gockpt/internal/netlock"
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
	conns, err := d.files.TCPConnections()
	if err != nil {
		return err
	}
	if len(conns) == 0 {
		return nil
	}
	if d.opts.NetworkLock == NetworkLockSkip {
		log.Infof("%d established connections, not locked (--network-lock skip)", len(conns))
		return nil
	}
	id := lockID(d.opts.Pid)
	// The watchdog hears of the lock first: if gockpt dies from here on,
	// it lifts it.
	if err := d.watchdog.NetLock(netlock.TablePrefix + id); err != nil {
		return err
	}
	if err := netlock.Lock(id, conns); err != nil {
		return fmt.Errorf("network lock of %d established connections: %w (dump without the lock with --network-lock skip, if nothing can reach them meanwhile)", len(conns), err)
	}
	d.netLocked = true
	log.Infof("network locked: nftables table inet %s%s drops the packets of %d connections", netlock.TablePrefix, id, len(conns))
	return nil
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
