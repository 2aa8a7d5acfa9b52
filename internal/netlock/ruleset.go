package netlock

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// The table's layout. Names are what `nft list table inet gockpt-ID` shows.
const (
	inputChain  = "input"
	outputChain = "output"
	// priority runs the lock before conntrack on output (-200), so dropped
	// packets never touch conntrack state, and before every ordinary
	// filter chain (0) on both hooks.
	priority = nftables.ChainPriority(-300)
	// elemsPerMessage bounds one NEWSETELEM message: its element list is
	// one netlink attribute, whose length is 16 bits.
	elemsPerMessage = 512
	// ackTimeout bounds the wait for the kernel's answer to a batch.
	ackTimeout = 10 * time.Second
)

// family is one of the two address families of the lock: its set and how
// its rules read addresses.
type family struct {
	nfproto byte
	set     string
	setID   uint32 // names the set within one batch; nonzero
	keyType nftables.SetDatatype
	// saddr and daddr are the offsets of the addresses in the network
	// header; addrLen their length.
	saddr, daddr, addrLen uint32
}

var (
	ipv4 = family{
		nfproto: unix.NFPROTO_IPV4, set: "conns4", setID: 1,
		keyType: nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetService, nftables.TypeIPAddr, nftables.TypeInetService),
		saddr:   12, daddr: 16, addrLen: 4,
	}
	ipv6 = family{
		nfproto: unix.NFPROTO_IPV6, set: "conns6", setID: 2,
		keyType: nftables.MustConcatSetType(nftables.TypeIP6Addr, nftables.TypeInetService, nftables.TypeIP6Addr, nftables.TypeInetService),
		saddr:   8, daddr: 24, addrLen: 16,
	}
)

// keySet holds the set keys of a list of connections, without duplicates:
// local address . local port . remote address . remote port, each port
// padded to 4 bytes as nftables concatenations are.
type keySet struct {
	v4, v6 [][]byte
}

func (k keySet) len() int { return len(k.v4) + len(k.v6) }

// size is about how many bytes the batch takes.
func (k keySet) size() int { return 4096 + 40*len(k.v4) + 64*len(k.v6) }

func keysOf(conns []Conn) (keySet, error) {
	var k keySet
	seen := make(map[string]bool, len(conns))
	for _, c := range conns {
		l, r := c.Local.Addr().Unmap(), c.Remote.Addr().Unmap()
		if !l.IsValid() || !r.IsValid() {
			return keySet{}, fmt.Errorf("network lock: TCP connection %v: missing address", c)
		}
		if l.Is4() != r.Is4() {
			return keySet{}, fmt.Errorf("network lock: TCP connection %v: local and remote addresses are of different families", c)
		}
		key := make([]byte, 0, 40)
		key = append(key, l.AsSlice()...)
		key = append(key, byte(c.Local.Port()>>8), byte(c.Local.Port()), 0, 0)
		key = append(key, r.AsSlice()...)
		key = append(key, byte(c.Remote.Port()>>8), byte(c.Remote.Port()), 0, 0)
		if seen[string(key)] {
			continue
		}
		seen[string(key)] = true
		if l.Is4() {
			k.v4 = append(k.v4, key)
		} else {
			k.v6 = append(k.v6, key)
		}
	}
	return k, nil
}

// newConn returns a nftables connection whose batches, of about size
// bytes, fit its socket, and that gives up waiting for the kernel after
// ackTimeout. Each request opens and closes its own netlink socket.
func newConn(size int) (*nftables.Conn, error) {
	return nftables.New(nftables.WithSockOptions(func(c *netlink.Conn) error {
		if err := c.SetReadDeadline(time.Now().Add(ackTimeout)); err != nil {
			return err
		}
		// A batch is one sendmsg, refused when larger than the send
		// buffer (212992 bytes by default: about 3,000 IPv6
		// connections). The kernel doubles what it is given.
		const defaultSndbuf = 200 << 10
		if size <= defaultSndbuf {
			return nil
		}
		rc, err := c.SyscallConn()
		if err != nil {
			return err
		}
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, size)
			if errors.Is(serr, unix.EPERM) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, size)
			}
		}); err != nil {
			return err
		}
		if serr != nil {
			return fmt.Errorf("set netlink send buffer to %d bytes: %w", size, serr)
		}
		return nil
	}))
}

// addLock queues, on c, the commands that fill table t (queued by the
// caller) with keys: its two sets and their elements, the input and output
// chains and their rules.
func addLock(c *nftables.Conn, t *nftables.Table, keys keySet) error {
	for _, f := range []*family{&ipv4, &ipv6} {
		s := &nftables.Set{
			Table:         t,
			ID:            f.setID,
			Name:          f.set,
			KeyType:       f.keyType,
			Concatenation: true,
			KeyByteOrder:  binaryutil.BigEndian,
			Comment:       "TCP connections gockpt holds: local address . port . remote address . port",
		}
		if err := c.AddSet(s, nil); err != nil {
			return fmt.Errorf("set %s: %w", f.set, err)
		}
		ks := keys.v4
		if f == &ipv6 {
			ks = keys.v6
		}
		for chunk := range slices.Chunk(ks, elemsPerMessage) {
			elems := make([]nftables.SetElement, len(chunk))
			for i, k := range chunk {
				elems[i].Key = k
			}
			if err := c.SetAddElements(s, elems); err != nil {
				return fmt.Errorf("set %s: %w", f.set, err)
			}
		}
	}
	accept := nftables.ChainPolicyAccept
	prio := priority
	for _, hook := range []struct {
		name    string
		hooknum *nftables.ChainHook
		input   bool
	}{
		{inputChain, nftables.ChainHookInput, true},
		{outputChain, nftables.ChainHookOutput, false},
	} {
		ch := c.AddChain(&nftables.Chain{
			Name:     hook.name,
			Table:    t,
			Type:     nftables.ChainTypeFilter,
			Hooknum:  hook.hooknum,
			Priority: &prio,
			Policy:   &accept,
		})
		for _, f := range []*family{&ipv4, &ipv6} {
			c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: f.rule(hook.input)})
		}
	}
	return nil
}

// rule drops TCP packets of f whose connection is in f's set, unless they
// carry Mark: on input those from remote to local, on output those from
// local to remote. Either way the key is built local first:
//
//	meta nfproto F meta l4proto tcp meta mark != Mark
//	LOCAL . LPORT . REMOTE . RPORT @set counter drop
//
// with LOCAL = ip daddr, LPORT = th dport on input, ip saddr and th sport
// on output.
func (f family) rule(input bool) []expr.Any {
	localAddr, localPort, remoteAddr, remotePort := f.saddr, uint32(0), f.daddr, uint32(2)
	if input {
		localAddr, localPort, remoteAddr, remotePort = f.daddr, 2, f.saddr, 0
	}
	// The key fills 32-bit registers from NFT_REG32_00 on: an address
	// takes addrLen/4 of them, a port one (zero-padded by the kernel).
	addrRegs := f.addrLen / 4
	r0 := uint32(unix.NFT_REG32_00)
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: unix.NFT_REG_1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: unix.NFT_REG_1, Data: []byte{f.nfproto}},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: unix.NFT_REG_1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: unix.NFT_REG_1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Meta{Key: expr.MetaKeyMARK, Register: unix.NFT_REG_1},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: unix.NFT_REG_1, Data: binaryutil.NativeEndian.PutUint32(Mark)},
		&expr.Payload{DestRegister: r0, Base: expr.PayloadBaseNetworkHeader, Offset: localAddr, Len: f.addrLen},
		&expr.Payload{DestRegister: r0 + addrRegs, Base: expr.PayloadBaseTransportHeader, Offset: localPort, Len: 2},
		&expr.Payload{DestRegister: r0 + addrRegs + 1, Base: expr.PayloadBaseNetworkHeader, Offset: remoteAddr, Len: f.addrLen},
		&expr.Payload{DestRegister: r0 + 2*addrRegs + 1, Base: expr.PayloadBaseTransportHeader, Offset: remotePort, Len: 2},
		&expr.Lookup{SourceRegister: r0, SetName: f.set, SetID: f.setID},
		&expr.Counter{},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}
}
