package restore

// The restore stub: a tiny static ELF that gockpt writes at run time, starts
// and seizes. Every restored task begins as the stub or as a clone of it
// (internal/pidctl), and is rebuilt from outside with syscalls injected
// through the stub's own syscall instruction (Stub.SyscallAddr), so it needs
// no stack, no vDSO and no memory of its own beyond its one code page.
//
// The kernel still gives it a [stack], [vdso], [vvar] and [vvar_vclock]
// wherever it likes; the caller unmaps or moves them (they may sit where the
// image wants something else). [vsyscall], where the kernel has it, is the
// same fixed page in every process and cannot be unmapped. The stub holds
// no descriptors but stdio, all /dev/null. Only the StubSize range at Base is the stub's,
// chosen by ChooseBase to collide with nothing in the image; the last
// injected syscalls of a restore unmap it.
//
// The stub is started from the tracer's locked OS thread with Pdeathsig
// SIGKILL, so it dies when that thread (Tracer.Close) or gockpt dies.

import (
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/pidctl"
	"github.com/gockpt/gockpt/internal/ptrace"
)

// StubSize is the smallest address range reserved for the stub at its
// base: its code page (stubCodeSize), then room for scratch pages.
const StubSize = 64 << 10

// stubCodeSize is the size of the stub's code mapping at its base; anything
// the caller maps for the stub (scratch, parking space) goes after it.
const stubCodeSize = stubPage

// StubScratchOffset and StubScratchSize place the scratch page MapScratch
// maps inside the stub's range.
const (
	StubScratchOffset = stubCodeSize
	StubScratchSize   = 0x1000
)

// StubName is the stub's comm and argv[0].
const StubName = "gockpt-stub"

const (
	stubPage = 0x1000
	// stubMinBase keeps clear of mmap_min_addr (64 KiB at most in practice).
	stubMinBase = 0x10000
	// stubMaxEnd is the top of the lower half of the 47-bit user space.
	stubMaxEnd = 1 << 46
)

// ChooseBase returns the lowest page-aligned address at or above 64 KiB
// whose range of size bytes (rounded up to pages; at least StubSize)
// overlaps none of vmas ([start, end) pairs: every VMA of every task to be
// restored), ending below 1<<46; 0 if there is none.
func ChooseBase(vmas [][2]uint64, size uint64) uint64 {
	size = max((size+stubPage-1)&^(stubPage-1), StubSize)
	v := append([][2]uint64(nil), vmas...)
	sort.Slice(v, func(i, j int) bool { return v[i][0] < v[j][0] })
	cand := uint64(stubMinBase)
	for _, r := range v {
		if r[1] <= cand {
			continue
		}
		if r[0] >= cand+size {
			break
		}
		cand = (r[1] + stubPage - 1) &^ (stubPage - 1)
	}
	if cand < stubMinBase || cand+size > stubMaxEnd || cand+size < cand {
		return 0
	}
	return cand
}

// ELF layout: header, two program headers, code, name.
const (
	stubEhdrSize = 64
	stubPhdrSize = 56
	stubCodeOff  = stubEhdrSize + 2*stubPhdrSize
)

var stubNameOff = stubCodeOff + uint64(len(stubCode))

// stubELF builds the stub executable for base: ET_EXEC, one PT_LOAD R+X
// mapping the whole file at base, and a PT_GNU_STACK so its stack is not
// executable.
func stubELF(base uint64) []byte {
	size := stubNameOff + uint64(len(StubName)) + 1
	le := binary.LittleEndian
	b := make([]byte, 0, size)
	b = append(b, 0x7f, 'E', 'L', 'F', byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT), byte(elf.ELFOSABI_NONE))
	b = append(b, make([]byte, 8)...) // e_ident padding
	b = le.AppendUint16(b, uint16(elf.ET_EXEC))
	b = le.AppendUint16(b, uint16(stubMachine))
	b = le.AppendUint32(b, uint32(elf.EV_CURRENT))
	b = le.AppendUint64(b, base+stubCodeOff+stubParkOff) // e_entry
	b = le.AppendUint64(b, stubEhdrSize)                 // e_phoff
	b = le.AppendUint64(b, 0)                            // e_shoff
	b = le.AppendUint32(b, 0)                            // e_flags
	b = le.AppendUint16(b, stubEhdrSize)
	b = le.AppendUint16(b, stubPhdrSize)
	b = le.AppendUint16(b, 2) // e_phnum
	b = le.AppendUint16(b, 64)
	b = le.AppendUint16(b, 0) // e_shnum
	b = le.AppendUint16(b, 0) // e_shstrndx
	phdr := func(typ elf.ProgType, flags elf.ProgFlag, vaddr, filesz, align uint64) {
		b = le.AppendUint32(b, uint32(typ))
		b = le.AppendUint32(b, uint32(flags))
		b = le.AppendUint64(b, 0) // p_offset
		b = le.AppendUint64(b, vaddr)
		b = le.AppendUint64(b, vaddr) // p_paddr
		b = le.AppendUint64(b, filesz)
		b = le.AppendUint64(b, filesz) // p_memsz
		b = le.AppendUint64(b, align)
	}
	phdr(elf.PT_LOAD, elf.PF_R|elf.PF_X, base, size, stubPage)
	phdr(elf.PT_GNU_STACK, elf.PF_R|elf.PF_W, 0, 0, 16)
	b = append(b, stubCode...)
	b = append(b, StubName...)
	return append(b, 0)
}

// Stub is a started, seized and stopped stub process.
type Stub struct {
	Pid  int
	Base uint64
	// SyscallAddr is the stub's syscall instruction, at Base+0xb9 on
	// x86-64; every task cloned from the stub has it too.
	SyscallAddr uint64
	Tracee      *ptrace.Tracee
	// Task drives the stub's main thread through SyscallAddr.
	Task *pidctl.Task

	cmd      *exec.Cmd
	killOnce sync.Once
	killErr  error
}

// StartStub writes the stub for base to a memfd, executes it as a child of
// tracer's thread (stdio on /dev/null, empty environment, Pdeathsig SIGKILL),
// waits until it is parked in pause, seizes it and names it StubName. base
// must be page-aligned, at least 64 KiB, and below 1<<46-StubSize; use
// ChooseBase. The stub's code takes the first page at base (stubCodeSize).
func StartStub(tracer *ptrace.Tracer, base uint64) (*Stub, error) {
	if base%stubPage != 0 || base < stubMinBase || base+StubSize > stubMaxEnd {
		return nil, fmt.Errorf("stub base %#x: want a page-aligned address in [%#x, %#x)", base, stubMinBase, uint64(stubMaxEnd-StubSize))
	}
	exe, err := stubMemfd(stubELF(base))
	if err != nil {
		return nil, err
	}
	defer exe.Close()
	cmd := exec.Command(fmt.Sprintf("/proc/self/fd/%d", exe.Fd()))
	cmd.Args = []string{StubName}
	cmd.Env = []string{}
	// Stdin, Stdout and Stderr stay nil: /dev/null.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	// Pdeathsig follows the thread that forks: the tracer's, which lives as
	// long as the tracer.
	if err := tracer.Do(cmd.Start); err != nil {
		return nil, fmt.Errorf("start restore stub: %w", err)
	}
	s := &Stub{Pid: cmd.Process.Pid, Base: base, SyscallAddr: base + stubCodeOff + stubGadgetOff, cmd: cmd}
	if err := s.seize(tracer); err != nil {
		s.Kill()
		return nil, fmt.Errorf("restore stub %d: %w", s.Pid, err)
	}
	return s, nil
}

// stubMemfd returns a sealed, read-only descriptor of a memfd holding exe:
// read-only because exec refuses a file open for writing (ETXTBSY).
func stubMemfd(exe []byte) (*os.File, error) {
	flags := unix.MFD_CLOEXEC | unix.MFD_ALLOW_SEALING
	fd, err := unix.MemfdCreate(StubName, flags|unix.MFD_EXEC)
	if err == unix.EINVAL { // before Linux 6.3: no MFD_EXEC, memfds are executable
		fd, err = unix.MemfdCreate(StubName, flags)
	}
	if err != nil {
		return nil, fmt.Errorf("restore stub: memfd_create: %w", err)
	}
	rw := os.NewFile(uintptr(fd), "memfd:"+StubName)
	defer rw.Close()
	if _, err := rw.Write(exe); err != nil {
		return nil, fmt.Errorf("restore stub: write memfd: %w", err)
	}
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(rw.Fd(), unix.F_ADD_SEALS, seals); err != nil {
		return nil, fmt.Errorf("restore stub: seal memfd: %w", err)
	}
	ro, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", rw.Fd()), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("restore stub: reopen memfd read-only: %w", err)
	}
	if ro < 3 {
		// With stdio closed the memfd could land on 0-2, which the child
		// replaces with /dev/null before it execs /proc/self/fd/N.
		hi, err := unix.FcntlInt(uintptr(ro), unix.F_DUPFD_CLOEXEC, 3)
		unix.Close(ro)
		if err != nil {
			return nil, fmt.Errorf("restore stub: move memfd above stdio: %w", err)
		}
		ro = hi
	}
	return os.NewFile(uintptr(ro), "memfd:"+StubName), nil
}

// stubParkTimeout bounds how long the stub may take to exec and park.
const stubParkTimeout = 5 * time.Second

// seize waits until the stub blocks in its pause, then seizes it and checks
// it stopped inside its own code.
func (s *Stub) seize(tracer *ptrace.Tracer) error {
	parked := s.Base + stubCodeOff + stubParkedOff
	var last string
	for deadline := time.Now().Add(stubParkTimeout); ; time.Sleep(time.Millisecond) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/syscall", s.Pid))
		if err != nil {
			return fmt.Errorf("wait until parked: %w", err)
		}
		last = strings.TrimSpace(string(b))
		f := strings.Fields(last)
		if len(f) == 9 && f[0] == strconv.Itoa(stubSysPause) && f[8] == fmt.Sprintf("%#x", parked) {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not parked in pause at %#x after %v (/proc/%d/syscall: %q)", parked, stubParkTimeout, s.Pid, last)
		}
	}
	te, err := tracer.Seize(s.Pid)
	if err != nil {
		return err
	}
	s.Tracee = te
	s.Task = pidctl.FromTracee(te, s.SyscallAddr)
	regs, err := te.GetRegs()
	if err != nil {
		return err
	}
	if pc := ptrace.PC(&regs); pc != parked {
		return fmt.Errorf("seized at %#x, not in its parking loop at %#x", pc, parked)
	}
	r, err := s.Task.Syscall(unix.SYS_PRCTL, unix.PR_SET_NAME, s.Base+stubNameOff)
	if err == nil && ptrace.Errno(r) != 0 {
		err = ptrace.Errno(r)
	}
	if err != nil {
		return fmt.Errorf("name it %s: %w", StubName, err)
	}
	return s.closeInherited()
}

// closeInherited closes every descriptor but stdio that the stub inherited
// from gockpt without O_CLOEXEC: it must hold nothing (a pipe's write end
// kept open would keep its reader from ever seeing EOF).
func (s *Stub) closeInherited() error {
	r, err := s.Task.Syscall(unix.SYS_CLOSE_RANGE, 3, ^uint64(0)>>32, 0)
	if err != nil {
		return fmt.Errorf("close inherited descriptors: %w", err)
	}
	if ptrace.Errno(r) != unix.ENOSYS { // close_range is Linux 5.9
		if e := ptrace.Errno(r); e != 0 {
			return fmt.Errorf("close inherited descriptors: close_range: %w", e)
		}
		return nil
	}
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", s.Pid))
	if err != nil {
		return fmt.Errorf("close inherited descriptors: %w", err)
	}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd < 3 {
			continue
		}
		if r, err := s.Task.Syscall(unix.SYS_CLOSE, uint64(fd)); err != nil || ptrace.Errno(r) != 0 {
			return fmt.Errorf("close inherited descriptor %d: %d, %v", fd, int64(r), err)
		}
	}
	return nil
}

// MapScratch maps StubScratchSize bytes read-write at Base+StubScratchOffset,
// inside the stub's reserved range, for syscall arguments (pidctl.Request's
// Scratch). Clones of the stub made afterwards have it too.
func (s *Stub) MapScratch() (uint64, error) {
	addr := s.Base + StubScratchOffset
	r, err := s.Task.Syscall(unix.SYS_MMAP, addr, StubScratchSize, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_FIXED_NOREPLACE, ^uint64(0), 0)
	if err == nil && ptrace.Errno(r) != 0 {
		err = ptrace.Errno(r)
	}
	if err == nil && r != addr {
		err = fmt.Errorf("mapped at %#x", r)
	}
	if err != nil {
		return 0, fmt.Errorf("restore stub %d: map scratch page at %#x: %w", s.Pid, addr, err)
	}
	return addr, nil
}

// Kill kills the stub with all its threads and reaps it. Children cloned
// from it are not touched. Safe to call more than once.
func (s *Stub) Kill() error {
	s.killOnce.Do(func() {
		if s.Task != nil {
			s.killErr = s.Task.Kill()
			if !errors.Is(s.killErr, ptrace.ErrClosed) {
				// The tracer thread reaped it (it is our child).
				s.cmd.Process.Release()
				return
			}
		}
		// Not seized, or the tracer is gone (and with its thread, the
		// stub, by Pdeathsig): an ordinary child.
		s.cmd.Process.Kill()
		_, err := s.cmd.Process.Wait()
		var se *os.SyscallError
		if errors.As(err, &se) && se.Err == unix.ECHILD {
			err = nil
		}
		s.killErr = err
	})
	if s.killErr != nil {
		return fmt.Errorf("restore stub %d: kill: %w", s.Pid, s.killErr)
	}
	return nil
}
