// Package netlock is the network lock: while gockpt dumps a tree that holds
// established TCP connections, and until restore brings them back, the
// packets of those connections are dropped, so the peer's retransmissions
// never meet a closed socket and get an RST back.
//
// The lock is one nftables table per dump, family inet, named TablePrefix+id,
// made over netlink with github.com/google/nftables: no nft or iptables binary
// is needed. The table holds
//
//   - two named sets, conns4 and conns6, whose keys are the connections as
//     their local sockets see them: local address . local port . remote
//     address . remote port (IPv4-mapped IPv6 addresses go to conns4, since
//     their packets are IPv4);
//   - a base chain on the input hook that drops TCP packets from remote to
//     local whose tuple is in a set, and one on the output hook that drops
//     those from local to remote. Both run at the raw priority (-300), before
//     conntrack on output and before any ordinary filter rule, with policy
//     accept: only the listed connections are touched. Packets carrying Mark
//     (gockpt's own, such as a forged FIN at restore) pass.
//
// Every change is one netlink batch, which nftables applies as one
// transaction: a table is there whole or not at all, and Lock on a table that
// exists replaces it in the same transaction, so a connection locked before
// and after is never unlocked in between. A new lock takes about 1 ms for 100
// connections and 2 ms for 1,000; a transaction that deletes a table (Unlock,
// or Lock replacing one) takes about 10 ms more in the kernel (Linux 6.18),
// whatever the table holds. Each call opens its own netlink socket in the
// calling thread's network namespace and closes it before returning; callers
// that lock connections of another namespace enter it themselves
// (runtime.LockOSThread, setns) around the call.
package netlock

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// Conn is one TCP connection as its local socket sees it.
type Conn struct{ Local, Remote netip.AddrPort }

func (c Conn) String() string { return c.Local.String() + " -> " + c.Remote.String() }

// Mark is the packet mark (SO_MARK) of packets gockpt itself sends while the
// lock holds (e.g. a forged FIN at restore); the lock lets them through.
const Mark = 0xC114

// TablePrefix: every table gockpt makes is named TablePrefix + id, family
// inet.
const TablePrefix = "gockpt-"

// maxNameLen is the longest table name nftables takes (NFT_NAME_MAXLEN
// less the terminating NUL).
const maxNameLen = 255

// tableName checks id and returns the table's name.
func tableName(id string) (string, error) {
	name := TablePrefix + id
	switch {
	case id == "":
		return "", errors.New("network lock: empty lock id")
	case strings.IndexByte(id, 0) >= 0:
		return "", fmt.Errorf("network lock: lock id %q holds a NUL byte", id)
	case len(name) > maxNameLen:
		return "", fmt.Errorf("network lock: table name %s... is %d bytes long, nftables takes at most %d", name[:32], len(name), maxNameLen)
	}
	return name, nil
}

// Lock makes table TablePrefix+id (family inet) that drops, in both
// directions (hooks input and output), every packet of each conn, except
// packets carrying Mark. One netlink batch: either the whole table exists
// afterwards or nothing does. If the table already exists (an earlier dump's
// lock that no restore lifted yet), it is replaced by the new set of
// connections in the same transaction, so connections in both sets stay
// locked throughout.
func Lock(id string, conns []Conn) error {
	name, err := tableName(id)
	if err != nil {
		return err
	}
	keys, err := keysOf(conns)
	if err != nil {
		return err
	}
	// Most locks are new: create the table, refusing one that exists, so
	// that an earlier lock is never merged into.
	err = flushLock(name, keys, false)
	if errors.Is(err, unix.EEXIST) {
		// An earlier lock is there: replace it in one transaction.
		// Deleting a table costs the kernel an RCU grace period (about
		// 10 ms), which is why this is not the first try.
		err = flushLock(name, keys, true)
	}
	if err != nil {
		return lockError(name, keys, err)
	}
	return nil
}

// flushLock sends the batch that makes table name with keys. With replace
// it starts "add table; delete table": the add makes the delete valid
// whether or not the table exists by then, and the batch is one
// transaction, so the old lock holds until the new one does.
func flushLock(name string, keys keySet, replace bool) error {
	c, err := newConn(keys.size())
	if err != nil {
		return fmt.Errorf("open netlink socket: %w", cause(err))
	}
	t := &nftables.Table{Name: name, Family: nftables.TableFamilyINet}
	if replace {
		c.AddTable(t)
		c.DelTable(t)
		c.AddTable(t)
	} else {
		c.CreateTable(t)
	}
	if err := addLock(c, t, keys); err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	return cause(c.Flush())
}

func lockError(table string, keys keySet, err error) error {
	what := "1 TCP connection"
	if n := keys.len(); n != 1 {
		what = fmt.Sprintf("%d TCP connections", n)
	}
	return fmt.Errorf("network lock: create nftables table inet %s for %s: %w", table, what, hint(err))
}

// Unlock deletes the table; a table already gone is not an error.
func Unlock(id string) error {
	name, err := tableName(id)
	if err != nil {
		return err
	}
	if err := deleteTable(name); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("network lock: nftables table inet %s: delete: %w", name, hint(err))
	}
	return nil
}

func deleteTable(name string) error {
	c, err := newConn(0)
	if err != nil {
		return err
	}
	c.DelTable(&nftables.Table{Name: name, Family: nftables.TableFamilyINet})
	return cause(c.Flush())
}

// Tables lists the gockpt tables present in the current network namespace
// (names with the prefix), sorted. A Probe running at the same time shows
// its scratch table here too.
func Tables() ([]string, error) {
	c, err := newConn(0)
	if err != nil {
		return nil, fmt.Errorf("nftables: list tables: %w", hint(cause(err)))
	}
	ts, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, fmt.Errorf("nftables: list tables: %w", hint(cause(err)))
	}
	var out []string
	for _, t := range ts {
		if t.Family == nftables.TableFamilyINet && strings.HasPrefix(t.Name, TablePrefix) {
			out = append(out, t.Name)
		}
	}
	slices.Sort(out)
	return out, nil
}

// probeConns are what Probe locks: port 0, which no TCP connection uses,
// so the scratch table never drops a real packet.
var probeConns = []Conn{
	{netip.MustParseAddrPort("192.0.2.1:0"), netip.MustParseAddrPort("192.0.2.2:0")},
	{netip.MustParseAddrPort("[2001:db8::1]:0"), netip.MustParseAddrPort("[2001:db8::2]:0")},
}

// Probe says whether nftables works here for the lock: it makes a scratch
// table laid out like Lock's (sets with concatenated keys, base chains on
// input and output, the rules), named TablePrefix + "probe-" + pid + a random
// suffix, and deletes it. Otherwise it returns an error naming what failed,
// e.g. "nftables: create table inet gockpt-probe-...: operation not
// permitted (CAP_NET_ADMIN needed)".
func Probe() error {
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	name := fmt.Sprintf("%sprobe-%d-%s", TablePrefix, os.Getpid(), hex.EncodeToString(rnd[:]))
	keys, err := keysOf(probeConns)
	if err != nil {
		return err
	}
	if err := flushLock(name, keys, false); err != nil {
		return fmt.Errorf("nftables: create table inet %s: %w", name, hint(err))
	}
	if err := deleteTable(name); err != nil {
		return fmt.Errorf("nftables: delete table inet %s (delete it by hand): %w", name, hint(err))
	}
	return nil
}

// hint wraps errnos whose cause is known with what to do.
func hint(err error) error {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return err
	}
	switch errno {
	case unix.EPERM:
		return fmt.Errorf("%w (CAP_NET_ADMIN needed)", err)
	case unix.EOPNOTSUPP, unix.EPROTONOSUPPORT, unix.EAFNOSUPPORT:
		return fmt.Errorf("%w (CONFIG_NF_TABLES and CONFIG_NF_TABLES_INET needed)", err)
	}
	return err
}

// cause strips the library's wrapping ("conn.Receive: netlink receive: ")
// down to the errno when there is one: that is what a user can act on.
func cause(err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return err
}
