package keeper

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"golang.org/x/sys/unix"
)

// This file is the one place that knows the wire format: one JSON object per
// SOCK_SEQPACKET packet, with the fds of the entries it lists attached as
// SCM_RIGHTS, in the same order.
//
//	client → keeper: take | commit… | release
//	keeper → client: state… (answers take) | ok | error
//
// A set of entries (commit, state) is split over packets of at most
// maxFdsPerPacket entries; every packet but the last has "more": true, and
// all repeat the generation.
const (
	protocolVersion = 1
	// maxFdsPerPacket is SCM_MAX_FD: the kernel refuses more fds in one
	// sendmsg.
	maxFdsPerPacket = 253
	// maxPacket bounds one packet. A full packet of entries with the
	// largest numbers (`{"pid":4194304,"start":18446744073709551615},`) and
	// the longest generation needs about 12 KiB.
	maxPacket  = 64 << 10
	maxGenLen  = 256
	maxErrLen  = 1024
	maxEntries = 1 << 16 // per commit or state: bounds what a peer makes us hold
	maxPid     = 1 << 22 // PID_MAX_LIMIT
)

const (
	opTake    = "take"
	opCommit  = "commit"
	opRelease = "release"
	opState   = "state"
	opOK      = "ok"
	opError   = "error"
)

// message is one packet.
type message struct {
	V       int         `json:"v"`
	Op      string      `json:"op"`
	Gen     string      `json:"gen,omitempty"`
	Entries []wireEntry `json:"entries,omitempty"`
	More    bool        `json:"more,omitempty"`
	Error   string      `json:"error,omitempty"`
}

// wireEntry is an Entry without its fd, which travels as SCM_RIGHTS.
type wireEntry struct {
	Pid       int    `json:"pid"`
	StartTime uint64 `json:"start"`
}

func encodeMessage(m *message) ([]byte, error) {
	m.V = protocolVersion
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	if len(b) > maxPacket {
		return nil, fmt.Errorf("%s message of %d bytes exceeds the %d-byte packet limit", m.Op, len(b), maxPacket)
	}
	return b, nil
}

// decodeMessage parses and checks one packet that came with nfds fds.
func decodeMessage(b []byte, nfds int) (*message, error) {
	if len(b) > maxPacket {
		return nil, fmt.Errorf("malformed message: %d bytes, limit %d", len(b), maxPacket)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	var m message
	if err := d.Decode(&m); err != nil {
		return nil, fmt.Errorf("malformed message: %w", err)
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, errors.New("malformed message: data after the JSON object")
	}
	if len(m.Entries) == 0 {
		m.Entries = nil
	}
	if err := m.check(nfds); err != nil {
		return nil, err
	}
	return &m, nil
}

func (m *message) check(nfds int) error {
	if m.V != protocolVersion {
		return fmt.Errorf("protocol version %d, want %d (the keeper was started by another gockpt build?)", m.V, protocolVersion)
	}
	switch m.Op {
	case opTake, opRelease, opOK:
		if m.Gen != "" || m.Entries != nil || m.More || m.Error != "" {
			return fmt.Errorf("malformed message: %s with a payload", m.Op)
		}
	case opCommit, opState:
		if m.Error != "" {
			return fmt.Errorf("malformed message: %s with an error text", m.Op)
		}
	case opError:
		if m.Error == "" || m.Gen != "" || m.Entries != nil || m.More {
			return errors.New("malformed message: error without a text, or with entries")
		}
	default:
		return fmt.Errorf("malformed message: unknown op %q", m.Op)
	}
	if len(m.Gen) > maxGenLen {
		return fmt.Errorf("malformed message: generation of %d bytes, limit %d", len(m.Gen), maxGenLen)
	}
	if len(m.Error) > maxErrLen {
		return fmt.Errorf("malformed message: error text of %d bytes, limit %d", len(m.Error), maxErrLen)
	}
	if len(m.Entries) > maxFdsPerPacket {
		return fmt.Errorf("malformed message: %d entries in one packet, limit %d", len(m.Entries), maxFdsPerPacket)
	}
	if len(m.Entries) != nfds {
		return fmt.Errorf("malformed message: %s lists %d entries but came with %d fds", m.Op, len(m.Entries), nfds)
	}
	for i, e := range m.Entries {
		if err := checkPid(e.Pid); err != nil {
			return fmt.Errorf("malformed message: entry %d: %w", i, err)
		}
	}
	return nil
}

func checkPid(pid int) error {
	if pid <= 0 || pid > maxPid {
		return fmt.Errorf("bad pid %d", pid)
	}
	return nil
}

// sendPacket sends one message with fds attached. The caller keeps its fds.
func sendPacket(sock int, m *message, fds []int) error {
	b, err := encodeMessage(m)
	if err != nil {
		return err
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	for {
		n, err := unix.SendmsgN(sock, b, oob, nil, unix.MSG_NOSIGNAL)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("send %s: %w", m.Op, err)
		}
		if n != len(b) {
			return fmt.Errorf("send %s: sent %d of %d bytes", m.Op, n, len(b))
		}
		return nil
	}
}

// sendEntries sends a set of entries as one or more op packets with send.
func sendEntries(send func(*message, []int) error, op, gen string, entries []Entry) error {
	for start := 0; ; start += maxFdsPerPacket {
		end := min(start+maxFdsPerPacket, len(entries))
		m := &message{Op: op, Gen: gen, More: end < len(entries)}
		fds := make([]int, 0, end-start)
		for _, e := range entries[start:end] {
			m.Entries = append(m.Entries, wireEntry{Pid: e.Pid, StartTime: e.StartTime})
			fds = append(fds, e.Fd)
		}
		if err := send(m, fds); err != nil {
			return err
		}
		if end == len(entries) {
			return nil
		}
	}
}

// recvPacket receives and decodes one message; the fds that came with it
// (O_CLOEXEC) belong to the caller unless err is set. io.EOF is a closed
// connection. flags adds to recvmsg's (MSG_DONTWAIT).
func recvPacket(sock int, flags int) (*message, []int, error) {
	buf := make([]byte, maxPacket)
	oob := make([]byte, unix.CmsgSpace(maxFdsPerPacket*4))
	var n, oobn, rflags int
	var err error
	for {
		n, oobn, rflags, _, err = unix.Recvmsg(sock, buf, oob, flags|unix.MSG_CMSG_CLOEXEC)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return nil, nil, err
	}
	fds, err := parseRights(oob[:oobn])
	if err != nil {
		return nil, nil, err
	}
	switch {
	case n == 0 && oobn == 0:
		err = io.EOF
	case rflags&unix.MSG_TRUNC != 0:
		err = fmt.Errorf("malformed message: packet longer than %d bytes", maxPacket)
	case rflags&unix.MSG_CTRUNC != 0:
		err = fmt.Errorf("malformed message: more than %d fds in one packet", maxFdsPerPacket)
	}
	var m *message
	if err == nil {
		m, err = decodeMessage(buf[:n], len(fds))
	}
	if err != nil {
		closeFds(fds)
		return nil, nil, err
	}
	return m, fds, nil
}

// parseRights returns the fds of every SCM_RIGHTS message in oob.
func parseRights(oob []byte) ([]int, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	cmsgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("malformed control message: %w", err)
	}
	var fds []int
	for _, c := range cmsgs {
		if c.Header.Level != unix.SOL_SOCKET || c.Header.Type != unix.SCM_RIGHTS {
			continue
		}
		got, err := unix.ParseUnixRights(&c)
		if err != nil {
			closeFds(fds)
			return nil, fmt.Errorf("malformed SCM_RIGHTS: %w", err)
		}
		fds = append(fds, got...)
	}
	return fds, nil
}

// collector gathers one commit or state sent over several packets. It owns
// the fds it is given, also when add fails; close releases them.
type collector struct {
	op      string
	gen     string
	entries []Entry
}

// add takes one packet; done reports the last one.
func (c *collector) add(m *message, fds []int) (done bool, err error) {
	if c.op == "" {
		c.op, c.gen = m.Op, m.Gen
	} else if m.Op != c.op || m.Gen != c.gen {
		closeFds(fds)
		return false, fmt.Errorf("malformed message: %s of generation %q in the middle of %s of generation %q", m.Op, m.Gen, c.op, c.gen)
	}
	for i, e := range m.Entries {
		c.entries = append(c.entries, Entry{Pid: e.Pid, StartTime: e.StartTime, Fd: fds[i]})
	}
	if len(c.entries) > maxEntries {
		return false, fmt.Errorf("malformed message: %s of more than %d entries", c.op, maxEntries)
	}
	return !m.More, nil
}

func (c *collector) close() {
	for _, e := range c.entries {
		unix.Close(e.Fd)
	}
	c.entries = nil
}

func closeFds(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}
