package files

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/proc"
	"github.com/gockpt/gockpt/internal/support"
	pb "github.com/gockpt/gockpt/proto"
)

// ttyKind is a terminal. gockpt keeps pseudo-terminal pairs whose master
// the tree holds (tmux, screen, an ssh server): both ends at the same
// index, where it is free, with termios, window size, packet mode and
// exclusive mode, and the session that has the slave as its controlling
// terminal with its foreground group (restoreTerminals). It keeps the
// terminal of a shell job (--shell-job, CRIU's meaning): the tree runs in a
// session led outside it (a shell's), on that session's terminal; its fds
// on the terminal and on /dev/tty are restored on the terminal gockpt
// restore runs on (its stdin), with the termios they had, and the tree
// joins restore's session. The console and other terminals are refused,
// and so is data waiting in a pair's buffers.
//
// In files.img a terminal fd is a TTY entry naming its tty-info.img entry
// and a REG entry with its path, as CRIU writes them.
type ttyKind struct {
	kindBase
	// dump: one tty-info entry per terminal, by device.
	infos  []*pb.TtyInfoEntry
	byRdev map[string]uint32
	// restore: tty-info entries by id, and those whose termios are set;
	// the pairs made, by index.
	loaded map[uint32]*pb.TtyInfoEntry
	set    map[uint32]bool
	pairs  map[uint32]*os.File
}

func newTTYKind() Kind {
	return &ttyKind{byRdev: map[string]uint32{}, loaded: map[uint32]*pb.TtyInfoEntry{}, set: map[uint32]bool{}, pairs: map[uint32]*os.File{}}
}

// Terminal device numbers.
const (
	ttyMajor     = 5 // /dev/tty (minor 0), /dev/console (1), /dev/ptmx (2)
	ptsMajorLow  = 136
	ptsMajorHigh = 143
)

func isPtsSlave(rdev uint64) bool {
	maj := unix.Major(rdev)
	return maj >= ptsMajorLow && maj <= ptsMajorHigh
}

func isDevTTY(rdev uint64) bool { return unix.Major(rdev) == ttyMajor && unix.Minor(rdev) == 0 }

func isPtmx(rdev uint64) bool { return unix.Major(rdev) == ttyMajor && unix.Minor(rdev) == 2 }

func ptsIndex(rdev uint64) uint32 { return (unix.Major(rdev)-ptsMajorLow)*256 + unix.Minor(rdev) }

func (*ttyKind) Type() pb.FdTypes { return pb.FdTypes_TTY }

func (*ttyKind) Match(s *fdState) bool {
	return s.st.Mode&unix.S_IFMT == unix.S_IFCHR && isTTY(s.st.Rdev) && strings.HasPrefix(s.target, "/") && s.info.Flags&unix.O_PATH == 0
}

// Check keeps a shell job's terminal with --shell-job and refuses every
// other terminal, naming it.
func (*ttyKind) Check(c *Checker, s *fdState) error {
	refuse := func(detail, advice string) error {
		r := c.refuse(s, support.Terminals, s.target)
		r.Detail, r.Advice = detail, advice
		return r
	}
	rdev := s.st.Rdev
	switch {
	case isPtmx(rdev):
		dup, err := c.dup(s.pid, s.fd)
		if err != nil {
			return err
		}
		defer unix.Close(dup)
		n, err := unix.IoctlGetInt(dup, unix.TIOCGPTN)
		if err != nil {
			return fmt.Errorf("task %d fd %d: TIOCGPTN: %w", s.pid, s.fd, err)
		}
		if sid, err := unix.IoctlGetInt(dup, unix.TIOCGSID); err == nil && sid != 0 && !c.InTree(sid) {
			r := c.refuse(s, support.Terminals, fmt.Sprintf("%s (master of /dev/pts/%d)", s.target, n))
			r.Detail = fmt.Sprintf("its slave is the controlling terminal of session %d, led outside the tree", sid)
			r.Advice = "dump the tree that leads the session too"
			return r
		}
		if err := ptyQueues(dup, n); err != nil {
			r := c.refuse(s, support.Terminals, fmt.Sprintf("%s (master of /dev/pts/%d)", s.target, n))
			r.Detail, r.Advice, r.CRIU = err.Error(), "let the terminal's programs read what waits for them before dumping", "-"
			return r
		}
		return nil
	case isPtsSlave(rdev):
		if c.ptyMasterInTree(ptsIndex(rdev)) {
			return nil // a pair inside the tree
		}
		if sid, led := c.ttySession(rdev); led {
			return refuse(fmt.Sprintf("the terminal of session %d, which the tree leads, and its master is not in the tree", sid), "dump the tree that holds the terminal's master too")
		}
		if !c.ShellJob {
			return refuse("attached to shell terminal: use --shell-job",
				"dump with --shell-job, and restore with --shell-job on a terminal; or start the tree with setsid and its stdio away from the terminal (</dev/null >log 2>&1)")
		}
		if other, ok := c.otherTTY(rdev); ok {
			return refuse(fmt.Sprintf("the tree holds another terminal too (%s): a shell job is restored on one terminal", ttyName(other)), "")
		}
		return nil
	case isDevTTY(rdev):
		// /dev/tty is the task's controlling terminal: kept when that is
		// kept, a pair of the tree's or a shell job's.
		st, err := proc.ReadStat(s.pid)
		if err != nil {
			return err
		}
		switch {
		case st.TTYNr != 0 && c.InTree(st.Session) && c.PtyInTree(uint64(st.TTYNr)):
			return nil
		case st.TTYNr != 0 && !c.InTree(st.Session) && c.ShellJob:
			return nil
		case st.TTYNr != 0 && !c.InTree(st.Session):
			return refuse("attached to shell terminal: use --shell-job",
				"dump with --shell-job, and restore with --shell-job on a terminal; or start the tree with setsid and its stdio away from the terminal (</dev/null >log 2>&1)")
		}
		return refuse("the task's controlling terminal is not one gockpt keeps (no pseudo-terminal of the tree, no shell job's)", "")
	case unix.Major(rdev) == ttyMajor && unix.Minor(rdev) == 1:
		r := c.refuse(s, support.Terminals, s.target)
		r.Detail, r.CRIU = "the system console, which gockpt does not restore", "-"
		r.Advice = "send the task's output elsewhere (a file, the journal) instead of /dev/console before dumping"
		return r
	}
	return refuse("", "")
}

// ptyQueues refuses data waiting in a pair's buffers: what the slave's
// programs wrote that the master has not read, and input the slave's
// programs have not read (complete lines, in canonical mode).
func ptyQueues(master, index int) error {
	if n, err := unix.IoctlGetInt(master, unix.TIOCINQ); err == nil && n > 0 {
		return fmt.Errorf("%d bytes written to /dev/pts/%d wait to be read from its master", n, index)
	}
	slave, err := openPeer(master, unix.O_RDWR|unix.O_NONBLOCK)
	if err != nil {
		return nil // the slave cannot be opened (locked): nobody typed into it
	}
	defer unix.Close(slave)
	if n, err := unix.IoctlGetInt(slave, unix.TIOCINQ); err == nil && n > 0 {
		return fmt.Errorf("%d bytes of input to /dev/pts/%d wait to be read", n, index)
	}
	return nil
}

// ptyMasterInTree tells a pseudo-terminal whose master a task of the tree
// holds.
func (c *Checker) ptyMasterInTree(index uint32) bool {
	c.ttyMu.Lock()
	defer c.ttyMu.Unlock()
	if c.ptyMasters == nil {
		c.ptyMasters = map[uint32]bool{}
		for _, pid := range c.Tasks {
			fds, _ := ListFds(pid)
			for _, fd := range fds {
				var st unix.Stat_t
				if unix.Stat(fmt.Sprintf("/proc/%d/fd/%d", pid, fd), &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || !isPtmx(st.Rdev) {
					continue
				}
				dup, err := c.dup(pid, fd)
				if err != nil {
					continue
				}
				if n, err := unix.IoctlGetInt(dup, unix.TIOCGPTN); err == nil {
					c.ptyMasters[uint32(n)] = true
				}
				unix.Close(dup)
			}
		}
	}
	return c.ptyMasters[index]
}

// PtyInTree tells a controlling terminal (tty_nr of /proc/PID/stat) that
// is the slave of a pair whose master the tree holds.
func (c *Checker) PtyInTree(ttyNr uint64) bool {
	maj, min := (ttyNr>>8)&0xfff, (ttyNr&0xff)|((ttyNr>>12)&0xfff00)
	rdev := unix.Mkdev(uint32(maj), uint32(min))
	return isPtsSlave(rdev) && c.ptyMasterInTree(ptsIndex(rdev))
}

// ptmxIndex is the index of the pair whose master fd of pid is.
func (c *Checker) ptmxIndex(pid, fd int) (int, error) {
	dup, err := c.dup(pid, fd)
	if err != nil {
		return 0, err
	}
	defer unix.Close(dup)
	n, err := unix.IoctlGetInt(dup, unix.TIOCGPTN)
	if err != nil {
		return 0, fmt.Errorf("task %d fd %d: TIOCGPTN: %w", pid, fd, err)
	}
	return n, nil
}

// ttySession is the session whose controlling terminal rdev is, when the
// tree leads it.
func (c *Checker) ttySession(rdev uint64) (int, bool) {
	for _, pid := range c.Tasks {
		st, err := proc.ReadStat(pid)
		if err != nil || st.TTYNr == 0 || uint64(st.TTYNr) != ttyNrOf(rdev) {
			continue
		}
		if c.InTree(st.Session) {
			return st.Session, true
		}
	}
	return 0, false
}

// otherTTY is a shell-job terminal of the tree other than rdev, if the
// tree holds two.
func (c *Checker) otherTTY(rdev uint64) (uint64, bool) {
	c.ttyMu.Lock()
	defer c.ttyMu.Unlock()
	if c.shellTTY == 0 {
		c.shellTTY = rdev
	}
	return c.shellTTY, c.shellTTY != rdev
}

// ttyNrOf encodes a device number as /proc/PID/stat's tty_nr does.
func ttyNrOf(rdev uint64) uint64 {
	if isPtmx(rdev) {
		return 0
	}
	maj, min := uint64(unix.Major(rdev)), uint64(unix.Minor(rdev))
	return (min & 0xff) | maj<<8 | (min&^0xff)<<12
}

// ttyName names a terminal as ps does.
func ttyName(rdev uint64) string {
	switch {
	case isPtsSlave(rdev):
		return fmt.Sprintf("/dev/pts/%d", (unix.Major(rdev)-ptsMajorLow)*256+unix.Minor(rdev))
	case isDevTTY(rdev):
		return "/dev/tty"
	}
	return fmt.Sprintf("terminal %d:%d", unix.Major(rdev), unix.Minor(rdev))
}

// Dump writes the fd's TTY entry and the REG entry of its path, and the
// terminal's tty-info entry once: termios, locked termios, window size,
// session and foreground group.
func (k *ttyKind) Dump(d *Dumper, o object) error {
	key := fmt.Sprint(o.st.Rdev)
	if isPtmx(o.st.Rdev) {
		// Every master is 5:2: one per pair, by its index.
		n, err := d.Checker.ptmxIndex(o.pid, o.fd)
		if err != nil {
			return err
		}
		key = fmt.Sprintf("ptmx %d", n)
	}
	infoID, ok := k.byRdev[key]
	if !ok {
		info, err := ttyInfo(d.Checker, o)
		if err != nil {
			return fmt.Errorf("task %d fd %d: %s: %w", o.pid, o.fd, o.target, err)
		}
		infoID = ttyInfoID(info)
		info.Id = proto.Uint32(infoID)
		k.byRdev[key] = infoID
		k.infos = append(k.infos, info)
	}
	regID := d.newID()
	d.Files = append(d.Files, &pb.FileEntry{Type: pb.FdTypes_REG.Enum(), Id: proto.Uint32(regID), Reg: &pb.RegFileEntry{
		Id: proto.Uint32(regID), Flags: proto.Uint32(o.flags()), Pos: proto.Uint64(0), Fown: o.own,
		Name: proto.String(o.target), MntId: noMountImages, Mode: proto.Uint32(o.st.Mode),
	}})
	d.Files = append(d.Files, &pb.FileEntry{Type: pb.FdTypes_TTY.Enum(), Id: proto.Uint32(o.id), Tty: &pb.TtyFileEntry{
		Id: proto.Uint32(o.id), TtyInfoId: proto.Uint32(infoID), Flags: proto.Uint32(o.flags()), Fown: o.own, RegfId: proto.Uint32(regID),
	}})
	return nil
}

// ttyInfoID is a terminal's tty-info id as CRIU makes it, which its
// restore pairs masters and slaves by: the index times two, plus one for
// a master; /dev/tty has index 1006.
func ttyInfoID(info *pb.TtyInfoEntry) uint32 {
	if info.GetType() == pb.TtyType_CTTY {
		return 1006 << 1
	}
	id := info.GetPty().GetIndex() << 1
	if isPtmx(uint64(info.GetRdev())) {
		id |= 1
	}
	return id
}

func ttyInfo(c *Checker, o object) (*pb.TtyInfoEntry, error) {
	typ := pb.TtyType_PTY
	if isDevTTY(o.st.Rdev) {
		typ = pb.TtyType_CTTY
	}
	info := &pb.TtyInfoEntry{Type: typ.Enum(), Locked: proto.Bool(false), Exclusive: proto.Bool(false), PacketMode: proto.Bool(false),
		Sid: proto.Uint32(0), Pgrp: proto.Uint32(0), Rdev: proto.Uint32(uint32(o.st.Rdev)), Dev: proto.Uint32(uint32(o.st.Dev)),
		Uid: proto.Uint32(o.st.Uid), Gid: proto.Uint32(o.st.Gid)}
	dup, err := c.dup(o.pid, o.fd)
	if err != nil {
		return nil, err
	}
	defer unix.Close(dup)
	if typ == pb.TtyType_PTY {
		index := ptsIndex(o.st.Rdev)
		if isPtmx(o.st.Rdev) {
			n, err := unix.IoctlGetInt(dup, unix.TIOCGPTN)
			if err != nil {
				return nil, fmt.Errorf("TIOCGPTN: %w", err)
			}
			index = uint32(n)
			// The master tells the pair's session and foreground group,
			// its lock and packet mode.
			if sid, err := unix.IoctlGetInt(dup, unix.TIOCGSID); err == nil {
				info.Sid = proto.Uint32(uint32(sid))
			}
			if pg, err := unix.IoctlGetInt(dup, unix.TIOCGPGRP); err == nil {
				info.Pgrp = proto.Uint32(uint32(pg))
			}
			if v, err := unix.IoctlGetInt(dup, unix.TIOCGPTLCK); err == nil {
				info.Locked = proto.Bool(v != 0)
			}
			if v, err := unix.IoctlGetInt(dup, unix.TIOCGPKT); err == nil {
				info.PacketMode = proto.Bool(v != 0)
			}
		}
		info.Pty = &pb.TtyPtyEntry{Index: proto.Uint32(index)}
	}
	// The session and foreground group, from a task whose controlling
	// terminal it is.
	rdev := o.st.Rdev
	if isPtmx(rdev) {
		rdev = unix.Mkdev(ptsMajorLow+info.GetPty().GetIndex()/256, info.GetPty().GetIndex()%256)
	}
	for _, pid := range append([]int{o.pid}, c.Tasks...) {
		st, err := proc.ReadStat(pid)
		if err == nil && st.TTYNr != 0 && (typ == pb.TtyType_CTTY && pid == o.pid || uint64(st.TTYNr) == ttyNrOf(rdev)) {
			info.Sid, info.Pgrp = proto.Uint32(uint32(st.Session)), proto.Uint32(uint32(st.TPGid))
			break
		}
	}
	if typ == pb.TtyType_CTTY {
		return info, nil
	}
	t, err := unix.IoctlGetTermios(dup, unix.TCGETS)
	if err != nil {
		return nil, fmt.Errorf("TCGETS: %w", err)
	}
	info.Termios = termiosEntry(t)
	if lt, err := unix.IoctlGetTermios(dup, unix.TIOCGLCKTRMIOS); err == nil {
		info.TermiosLocked = termiosEntry(lt)
	}
	if w, err := unix.IoctlGetWinsize(dup, unix.TIOCGWINSZ); err == nil {
		info.Winsize = &pb.WinsizeEntry{WsRow: proto.Uint32(uint32(w.Row)), WsCol: proto.Uint32(uint32(w.Col)),
			WsXpixel: proto.Uint32(uint32(w.Xpixel)), WsYpixel: proto.Uint32(uint32(w.Ypixel))}
	}
	if v, err := unix.IoctlGetInt(dup, unix.TIOCGEXCL); err == nil {
		info.Exclusive = proto.Bool(v != 0)
	}
	return info, nil
}

func termiosEntry(t *unix.Termios) *pb.TermiosEntry {
	e := &pb.TermiosEntry{CIflag: proto.Uint32(t.Iflag), COflag: proto.Uint32(t.Oflag), CCflag: proto.Uint32(t.Cflag),
		CLflag: proto.Uint32(t.Lflag), CLine: proto.Uint32(uint32(t.Line)), CIspeed: proto.Uint32(t.Ispeed), COspeed: proto.Uint32(t.Ospeed)}
	for _, c := range t.Cc {
		e.CCc = append(e.CCc, uint32(c))
	}
	return e
}

func (k *ttyKind) WriteImages(dir *images.Dir) error {
	if len(k.infos) == 0 {
		return nil
	}
	return writeEntries(dir, images.TtyInfoFile, images.KindTtyInfo, k.infos)
}

func (k *ttyKind) LoadImages(dir *images.Dir) error {
	if !dir.Exists(images.TtyInfoFile) {
		return nil
	}
	r, err := dir.Open(images.TtyInfoFile)
	if err != nil {
		return err
	}
	defer r.Close()
	for {
		var e pb.TtyInfoEntry
		if _, err := r.ReadEntry(&e); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		k.loaded[e.GetId()] = &e
	}
}

// Open makes a pseudo-terminal pair of the tree at its index, and gives
// its master, or a new open file of its slave; a shell job's terminal fd
// gets the terminal restore runs on: its stdin (a new fd on the same open
// file), with the termios it had; a /dev/tty fd opens restore's own
// /dev/tty.
func (k *ttyKind) Open(o *Opener, fe *pb.FileEntry) (*os.File, error) {
	e := fe.GetTty()
	info := k.loaded[e.GetTtyInfoId()]
	if info == nil {
		return nil, fmt.Errorf("terminal fd: tty-info entry %d is not in %s", e.GetTtyInfoId(), images.TtyInfoFile)
	}
	rdev := uint64(info.GetRdev())
	if info.GetType() == pb.TtyType_PTY {
		index := info.GetPty().GetIndex()
		if isPtmx(rdev) {
			m, err := k.pair(index, info)
			if err != nil {
				return nil, err
			}
			fd, err := unix.FcntlInt(m.Fd(), unix.F_DUPFD_CLOEXEC, 0)
			if err != nil {
				return nil, err
			}
			f := os.NewFile(uintptr(fd), m.Name())
			if err := setFlags(f, e.GetFlags()); err != nil {
				f.Close()
				return nil, err
			}
			return f, nil
		}
		if mi := k.masterInfo(index); mi != nil {
			return k.openSlave(index, mi, info, e.GetFlags())
		}
	}
	name := ttyName(rdev)
	if info.GetType() == pb.TtyType_CTTY {
		// /dev/tty opens the opener's controlling terminal: each task
		// holding it opens it again itself (Reopen); until then the fd
		// holds /dev/null.
		f, err := os.OpenFile("/dev/null", os.O_RDWR, 0)
		if err != nil {
			return nil, err
		}
		return f, nil
	}
	if !o.ShellJob {
		return nil, fmt.Errorf("%s was the terminal of a shell job: restore with --shell-job on a terminal", name)
	}
	if info.GetType() != pb.TtyType_PTY {
		return nil, fmt.Errorf("%s: gockpt restores only pseudo-terminals", name)
	}
	if _, err := unix.IoctlGetTermios(0, unix.TCGETS); err != nil {
		return nil, fmt.Errorf("the tree ran on %s: restore --shell-job gives it the terminal restore runs on, but restore's stdin is not a terminal", name)
	}
	fd, err := unix.FcntlInt(0, unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), name)
	if err := k.setTermios(fd, info); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: set its termios on restore's terminal: %w", name, err)
	}
	return f, nil
}

// setTermios sets a terminal's termios once.
func (k *ttyKind) setTermios(fd int, info *pb.TtyInfoEntry) error {
	t := info.GetTermios()
	if t == nil || k.set[info.GetId()] {
		return nil
	}
	k.set[info.GetId()] = true
	tio := &unix.Termios{Iflag: t.GetCIflag(), Oflag: t.GetCOflag(), Cflag: t.GetCCflag(), Lflag: t.GetCLflag(),
		Line: uint8(t.GetCLine()), Ispeed: t.GetCIspeed(), Ospeed: t.GetCOspeed()}
	for i, c := range t.GetCCc() {
		if i < len(tio.Cc) {
			tio.Cc[i] = uint8(c)
		}
	}
	return unix.IoctlSetTermios(fd, unix.TCSETS, tio)
}

// masterInfo is the tty-info of the master of pair index, if the images
// hold it.
func (k *ttyKind) masterInfo(index uint32) *pb.TtyInfoEntry {
	for _, i := range k.loaded {
		if i.GetType() == pb.TtyType_PTY && isPtmx(uint64(i.GetRdev())) && i.GetPty().GetIndex() == index {
			return i
		}
	}
	return nil
}

// pair is the master of pseudo-terminal index, opened the first time: the
// kernel gives the lowest free index, so /dev/ptmx is opened until it
// gives this one (the ones below, in use by nobody, are closed again); an
// index in use on this machine fails the restore. The master gets its
// termios, window size, packet mode and lock.
func (k *ttyKind) pair(index uint32, mi *pb.TtyInfoEntry) (*os.File, error) {
	if m := k.pairs[index]; m != nil {
		return m, nil
	}
	var below []*os.File
	defer func() {
		for _, f := range below {
			f.Close()
		}
	}()
	for {
		m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
		if err != nil {
			return nil, fmt.Errorf("/dev/pts/%d: open /dev/ptmx: %w", index, err)
		}
		n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
		if err != nil {
			m.Close()
			return nil, fmt.Errorf("/dev/pts/%d: TIOCGPTN: %w", index, err)
		}
		if uint32(n) == index {
			k.pairs[index] = m
			break
		}
		below = append(below, m)
		if uint32(n) > index || len(below) > 4096 {
			return nil, fmt.Errorf("/dev/pts/%d is in use on this machine (/dev/ptmx gave /dev/pts/%d): close what holds it, or restore where it is free", index, n)
		}
	}
	m := k.pairs[index]
	fd := int(m.Fd())
	if !mi.GetLocked() {
		if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
			return nil, fmt.Errorf("/dev/pts/%d: unlock: %w", index, err)
		}
	}
	if err := k.setTermios(fd, mi); err != nil {
		return nil, fmt.Errorf("/dev/pts/%d: master's termios: %w", index, err)
	}
	if w := mi.GetWinsize(); w != nil {
		ws := &unix.Winsize{Row: uint16(w.GetWsRow()), Col: uint16(w.GetWsCol()), Xpixel: uint16(w.GetWsXpixel()), Ypixel: uint16(w.GetWsYpixel())}
		if err := unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, ws); err != nil {
			return nil, fmt.Errorf("/dev/pts/%d: window size: %w", index, err)
		}
	}
	if mi.GetPacketMode() {
		if err := unix.IoctlSetPointerInt(fd, unix.TIOCPKT, 1); err != nil {
			return nil, fmt.Errorf("/dev/pts/%d: packet mode: %w", index, err)
		}
	}
	return m, nil
}

// openSlave opens the slave of pair index (a new open file, as the task's
// was) and sets its termios and exclusive mode.
func (k *ttyKind) openSlave(index uint32, mi, si *pb.TtyInfoEntry, flags uint32) (*os.File, error) {
	m, err := k.pair(index, mi)
	if err != nil {
		return nil, err
	}
	fd, err := openPeer(int(m.Fd()), int(flags&(unix.O_ACCMODE|unix.O_NONBLOCK|unix.O_APPEND)))
	if err != nil {
		return nil, fmt.Errorf("/dev/pts/%d: open the slave: %w", index, err)
	}
	f := os.NewFile(uintptr(fd), fmt.Sprintf("/dev/pts/%d", index))
	if err := k.setTermios(fd, si); err != nil {
		f.Close()
		return nil, fmt.Errorf("/dev/pts/%d: termios: %w", index, err)
	}
	if si.GetExclusive() {
		if err := unix.IoctlSetInt(fd, unix.TIOCEXCL, 0); err != nil {
			f.Close()
			return nil, fmt.Errorf("/dev/pts/%d: exclusive mode: %w", index, err)
		}
	}
	return f, nil
}

// Close closes the masters gockpt holds (the tasks hold theirs).
func (k *ttyKind) Close() {
	for _, m := range k.pairs {
		m.Close()
	}
}

// Terminal is a pseudo-terminal pair of the tree whose slave is the
// controlling terminal of a session the tree leads.
type Terminal struct {
	Index     uint32
	Sid, Pgrp int
	// Slave opens a new file of the slave, for the session's leader to
	// take as its controlling terminal.
	Slave func() (*os.File, error)
}

// TerminalOf is the pseudo-terminal pair of the images whose slave is the
// controlling terminal of session sid, made now if it was not yet; nil
// if there is none.
func (o *Opener) TerminalOf(sid int) (*Terminal, error) {
	k, _ := o.kinds.byType[pb.FdTypes_TTY].(*ttyKind)
	if k == nil {
		return nil, nil
	}
	for _, mi := range k.loaded {
		if mi.GetType() != pb.TtyType_PTY || !isPtmx(uint64(mi.GetRdev())) || int(mi.GetSid()) != sid {
			continue
		}
		if _, err := k.pair(mi.GetPty().GetIndex(), mi); err != nil {
			return nil, err
		}
		for _, t := range o.Terminals() {
			if t.Sid == sid {
				return &t, nil
			}
		}
	}
	return nil, nil
}

// Terminals lists the sessions' terminals restore must give back.
func (o *Opener) Terminals() []Terminal {
	k, _ := o.kinds.byType[pb.FdTypes_TTY].(*ttyKind)
	if k == nil {
		return nil
	}
	var out []Terminal
	for index, m := range k.pairs {
		mi := k.masterInfo(index)
		if mi == nil || mi.GetSid() == 0 {
			continue
		}
		m := m
		out = append(out, Terminal{Index: index, Sid: int(mi.GetSid()), Pgrp: int(mi.GetPgrp()), Slave: func() (*os.File, error) {
			fd, err := openPeer(int(m.Fd()), unix.O_RDWR)
			if err != nil {
				return nil, err
			}
			return os.NewFile(uintptr(fd), m.Name()), nil
		}})
	}
	return out
}

// ForegroundGroup is the process group a shell job's terminal had in the
// foreground at dump (0 if none is known), for restore to give it the
// terminal again.
func ForegroundGroup(files map[uint32]*pb.FileEntry, dir *images.Dir) int {
	k := newTTYKind().(*ttyKind)
	if k.LoadImages(dir) != nil {
		return 0
	}
	for _, fe := range files {
		if fe.GetType() != pb.FdTypes_TTY {
			continue
		}
		if info := k.loaded[fe.GetTty().GetTtyInfoId()]; info != nil && info.GetType() == pb.TtyType_PTY {
			return int(info.GetPgrp())
		}
	}
	return 0
}

func (*ttyKind) Owner(e *pb.FileEntry, _ map[uint32]*pb.FileEntry) (*pb.FownEntry, uint32) {
	return e.GetTty().GetFown(), e.GetTty().GetFlags()
}

func (*ttyKind) Describe(e *pb.FileEntry) string {
	return fmt.Sprintf("terminal (tty-info %d)", e.GetTty().GetTtyInfoId())
}

func (k *ttyKind) External(e *pb.FileEntry) string {
	info := k.loaded[e.GetTty().GetTtyInfoId()]
	if info == nil {
		return ""
	}
	return fmt.Sprintf("tty[%x:%x]", info.GetRdev(), info.GetDev())
}

// Reopen gives a task's /dev/tty fd a /dev/tty of its own opening, once
// the task has its controlling terminal: open, then dup3 over the fd
// with its close-on-exec flag.
func (k *ttyKind) Reopen(t Task, fd uint32, e *pb.FileEntry) error {
	info := k.loaded[e.GetTty().GetTtyInfoId()]
	if info == nil || info.GetType() != pb.TtyType_CTTY {
		return nil
	}
	path, err := t.Put([]byte("/dev/tty\x00"))
	if err != nil {
		return err
	}
	flags := uint64(e.GetTty().GetFlags()&(unix.O_ACCMODE|unix.O_NONBLOCK|unix.O_APPEND)) | unix.O_NOCTTY
	atFdcwd := int64(unix.AT_FDCWD)
	nfd, err := t.Call("open /dev/tty", unix.SYS_OPENAT, uint64(atFdcwd), path, flags, 0)
	if err != nil {
		return fmt.Errorf("task %d fd %d: open its controlling terminal: %w", t.Pid(), fd, err)
	}
	fdfl, err := t.Call("fcntl(F_GETFD)", unix.SYS_FCNTL, uint64(fd), unix.F_GETFD)
	if err != nil {
		return err
	}
	dflags := uint64(0)
	if fdfl&unix.FD_CLOEXEC != 0 {
		dflags = unix.O_CLOEXEC
	}
	if _, err := t.Call(fmt.Sprintf("dup3 /dev/tty to fd %d", fd), unix.SYS_DUP3, nfd, uint64(fd), dflags); err != nil {
		return err
	}
	_, err = t.Call("close", unix.SYS_CLOSE, nfd)
	return err
}
