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

// ttyKind is a terminal. gockpt keeps the terminal of a shell job
// (--shell-job, CRIU's meaning): the tree runs in a session led outside
// it (a shell's), on that session's terminal. Its fds on the terminal and
// on /dev/tty are restored on the terminal gockpt restore runs on (its
// stdin), with the termios they had; the tree joins restore's session.
// Pseudo-terminal pairs inside the tree, the console and other terminals
// are refused.
//
// In files.img a terminal fd is a TTY entry naming its tty-info.img entry
// and a REG entry with its path, as CRIU writes them.
type ttyKind struct {
	kindBase
	// dump: one tty-info entry per terminal, by device.
	infos  []*pb.TtyInfoEntry
	byRdev map[uint64]uint32
	// restore: tty-info entries by id, and those whose termios are set.
	loaded map[uint32]*pb.TtyInfoEntry
	set    map[uint32]bool
}

func newTTYKind() Kind {
	return &ttyKind{byRdev: map[uint64]uint32{}, loaded: map[uint32]*pb.TtyInfoEntry{}, set: map[uint32]bool{}}
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
	case isPtsSlave(rdev):
		if sid, led := c.ttySession(rdev); led {
			return refuse(fmt.Sprintf("the terminal of session %d, which the tree leads: gockpt keeps only a shell job's terminal, not pseudo-terminals inside the tree", sid), "")
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
		if !c.ShellJob {
			return refuse("attached to shell terminal: use --shell-job", "")
		}
		st, err := proc.ReadStat(s.pid)
		if err != nil {
			return err
		}
		if st.TTYNr == 0 || c.InTree(st.Session) {
			return refuse("the task's controlling terminal is not a shell job's", "")
		}
		return nil
	}
	return refuse("", "")
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
	infoID, ok := k.byRdev[o.st.Rdev]
	if !ok {
		info, err := ttyInfo(d.Checker, o)
		if err != nil {
			return fmt.Errorf("task %d fd %d: %s: %w", o.pid, o.fd, o.target, err)
		}
		infoID = d.newID()
		info.Id = proto.Uint32(infoID)
		k.byRdev[o.st.Rdev] = infoID
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

func ttyInfo(c *Checker, o object) (*pb.TtyInfoEntry, error) {
	typ := pb.TtyType_PTY
	if isDevTTY(o.st.Rdev) {
		typ = pb.TtyType_CTTY
	}
	info := &pb.TtyInfoEntry{Type: typ.Enum(), Locked: proto.Bool(false), Exclusive: proto.Bool(false), PacketMode: proto.Bool(false),
		Sid: proto.Uint32(0), Pgrp: proto.Uint32(0), Rdev: proto.Uint32(uint32(o.st.Rdev)), Dev: proto.Uint32(uint32(o.st.Dev)),
		Uid: proto.Uint32(o.st.Uid), Gid: proto.Uint32(o.st.Gid)}
	if typ == pb.TtyType_PTY {
		info.Pty = &pb.TtyPtyEntry{Index: proto.Uint32((unix.Major(o.st.Rdev)-ptsMajorLow)*256 + unix.Minor(o.st.Rdev))}
	}
	// The session and foreground group, from a task whose controlling
	// terminal it is.
	for _, pid := range append([]int{o.pid}, c.Tasks...) {
		st, err := proc.ReadStat(pid)
		if err == nil && st.TTYNr != 0 && (typ == pb.TtyType_CTTY && pid == o.pid || uint64(st.TTYNr) == ttyNrOf(o.st.Rdev)) {
			info.Sid, info.Pgrp = proto.Uint32(uint32(st.Session)), proto.Uint32(uint32(st.TPGid))
			break
		}
	}
	if typ == pb.TtyType_CTTY {
		return info, nil
	}
	dup, err := c.dup(o.pid, o.fd)
	if err != nil {
		return nil, err
	}
	defer unix.Close(dup)
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

// Open gives a shell job's terminal fd the terminal restore runs on: its
// stdin (a new fd on the same open file), with the termios it had; a
// /dev/tty fd opens restore's own /dev/tty.
func (k *ttyKind) Open(o *Opener, fe *pb.FileEntry) (*os.File, error) {
	e := fe.GetTty()
	info := k.loaded[e.GetTtyInfoId()]
	if info == nil {
		return nil, fmt.Errorf("terminal fd: tty-info entry %d is not in %s", e.GetTtyInfoId(), images.TtyInfoFile)
	}
	name := ttyName(uint64(info.GetRdev()))
	if !o.ShellJob {
		return nil, fmt.Errorf("%s was the terminal of a shell job: restore with --shell-job on a terminal", name)
	}
	if info.GetType() == pb.TtyType_CTTY {
		f, err := os.OpenFile("/dev/tty", openFlags(e.GetFlags()), 0)
		if err != nil {
			return nil, fmt.Errorf("%s: open restore's own /dev/tty: %w", name, err)
		}
		return f, nil
	}
	if info.GetType() != pb.TtyType_PTY {
		return nil, fmt.Errorf("%s: gockpt restores only a shell job's pseudo-terminal", name)
	}
	if _, err := unix.IoctlGetTermios(0, unix.TCGETS); err != nil {
		return nil, fmt.Errorf("the tree ran on %s: restore --shell-job gives it the terminal restore runs on, but restore's stdin is not a terminal", name)
	}
	fd, err := unix.FcntlInt(0, unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), name)
	if t := info.GetTermios(); t != nil && !k.set[info.GetId()] {
		k.set[info.GetId()] = true
		tio := &unix.Termios{Iflag: t.GetCIflag(), Oflag: t.GetCOflag(), Cflag: t.GetCCflag(), Lflag: t.GetCLflag(),
			Line: uint8(t.GetCLine()), Ispeed: t.GetCIspeed(), Ospeed: t.GetCOspeed()}
		for i, c := range t.GetCCc() {
			if i < len(tio.Cc) {
				tio.Cc[i] = uint8(c)
			}
		}
		if err := unix.IoctlSetTermios(fd, unix.TCSETS, tio); err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: set its termios on restore's terminal: %w", name, err)
		}
	}
	return f, nil
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
