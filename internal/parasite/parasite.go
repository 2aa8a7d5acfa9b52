package parasite

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/lsm"
	"github.com/gockpt/gockpt/internal/proc"
	"github.com/gockpt/gockpt/internal/ptrace"
)

// Options configure Inject.
type Options struct {
	// LSM labels the control socket with the target's context (nil:
	// lsm.Detect()).
	LSM lsm.LSM
	// SocketDir, when set, puts the control socket at a path in this
	// directory instead of the abstract namespace. Abstract names are
	// scoped to a network namespace, paths to a mount namespace: pick the
	// one the target shares with gockpt.
	SocketDir string
	// Timeout bounds every wait: the blob connecting, a reply, a stop
	// (0: 10s).
	Timeout time.Duration
	// Watchdog, when set, is told about the parasite's mapping before the
	// blob runs and when it is gone, so that it can remove what a
	// self-cured blob leaves behind if gockpt dies.
	Watchdog *Watchdog
	// Threads is how many other threads DumpThreads may run at once in
	// the area (a slot and a small stack each).
	Threads int
}

// Parasite is a blob running in the leader thread of a seized task.
type Parasite struct {
	tr      *ptrace.Tracer
	leader  *ptrace.Tracee
	pid     int
	timeout time.Duration

	area, areaLen uint64
	scratch       uint64
	// park is the parking code in the leader's vDSO (ptrace.ParkingCode),
	// 0 where there is none: then Cure cannot use GK_CMD_PARK, nor
	// DumpThreads run the threads at once.
	park uint64
	// threads is where the count and threadSlots slots for other threads
	// are (Options.Threads).
	threads     uint64
	threadSlots int

	// The leader's state when injected: what Cure and the frame restore.
	regs    ptrace.Regs
	xstate  []byte
	sigmask uint64

	ln       *net.UnixListener
	conn     *net.UnixConn
	sockaddr []byte

	running bool // the leader was resumed into the blob
	done    bool // cured, or the area is gone
	// busy: a command was sent and its reply not read yet (pages are
	// answered on another goroutine).
	busy atomic.Bool
	// sigpipe: SIGPIPE was pending (thread or process) before the blob
	// ran; one pending at Cure otherwise is the blob's and is dropped.
	sigpipe bool

	watchdog *Watchdog
}

const (
	pageSize   = 4096
	stackSize  = 64 << 10
	scratchLen = pageSize
)

// Test hooks: the moment the listening socket exists, and the moment before
// the leader is resumed into the blob.
var (
	testHookListening   func()
	testHookBeforeStart func(*Parasite) error
)

func pageAlign(n uint64) uint64 { return (n + pageSize - 1) &^ (pageSize - 1) }

// Inject maps the parasite into the task of leader (a seized, stopped
// thread, normally the thread group leader), starts it there and waits for
// it to connect. The other threads of the task must be stopped too. On error
// the task is left as it was, stopped.
func Inject(tr *ptrace.Tracer, leader *ptrace.Tracee, opts Options) (_ *Parasite, err error) {
	if opts.LSM == nil {
		opts.LSM = lsm.Detect()
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	p := &Parasite{tr: tr, leader: leader, pid: leader.Tgid, timeout: opts.Timeout}
	if err := p.listen(opts); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			p.closeSocket()
		}
	}()
	if p.regs, err = leader.GetRegs(); err != nil {
		return nil, err
	}
	if p.xstate, err = leader.GetXstate(); err != nil {
		return nil, err
	}
	if p.sigmask, err = leader.GetSigmask(); err != nil {
		return nil, err
	}
	if p.sigpipe, err = sigpipePending(p.pid, leader.Tid); err != nil {
		return nil, err
	}

	codeLen := pageAlign(blobDataStart)
	stackOff := pageAlign(blobBSSEnd)
	scratchOff := stackOff + stackSize
	frameOff := scratchOff + scratchLen
	threadsOff := frameOff + pageAlign(uint64(frameSize(len(p.xstate))))
	total := threadsOff
	if opts.Threads > 0 {
		total += pageAlign(threadsHeader + uint64(opts.Threads)*threadStride)
		p.threads, p.threadSlots = threadsOff, opts.Threads
	}
	// The address is chosen here and told to the watchdog before the mmap,
	// so that a gockpt killed right after it leaves nothing behind.
	want, err := freeRange(p.pid, total)
	if err != nil {
		return nil, err
	}
	if err := opts.Watchdog.Mapping(p.pid, want, total); err != nil {
		return nil, err
	}
	addr, err := leader.Syscall(unix.SYS_MMAP, want, total, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_SHARED|unix.MAP_ANONYMOUS|unix.MAP_FIXED_NOREPLACE, ^uint64(0), 0)
	if err != nil {
		return nil, fmt.Errorf("task %d: map parasite: %w", p.pid, err)
	}
	if e := ptrace.Errno(addr); e != 0 {
		return nil, fmt.Errorf("task %d: map parasite (%d bytes at %#x): %w", p.pid, total, want, e)
	}
	if addr != want {
		p.area, p.areaLen = addr, total
		p.unmap()
		return nil, fmt.Errorf("task %d: parasite mapped at %#x, not at %#x (MAP_FIXED_NOREPLACE needs Linux 4.17)", p.pid, addr, want)
	}
	p.area, p.areaLen, p.scratch = addr, total, addr+scratchOff
	if p.threadSlots > 0 {
		p.threads += addr
	}
	p.watchdog = opts.Watchdog
	defer func() {
		if err != nil && !p.running {
			p.unmap()
		}
	}()

	memfd, err := p.mapCode(leader, addr, codeLen)
	if err != nil {
		return nil, err
	}
	// The blob closes the memfd first thing; until it runs, gockpt does.
	defer func() {
		if err != nil && !p.running {
			p.closeMemfd(memfd)
		}
	}()

	// The frame's uc_stack is left empty: the blob puts the leader's
	// sigaltstack there first thing.
	frame, uc, err := buildSigframe(addr+frameOff, knownSyscall(p.pid, p.regs), p.sigmask, Stack{}, p.xstate)
	if err != nil {
		return nil, fmt.Errorf("task %d: %w", p.pid, err)
	}
	// On its way out the blob unmaps all but its code and the frame.
	// Where the parking code is, the blob can leave through it at Cure.
	if park, ok, err := leader.ParkingCode(); err != nil {
		return nil, err
	} else if ok {
		p.park = park
	}
	var exit uint64
	if p.park != 0 {
		exit = p.park + ptrace.ParkingExit
	}
	args, err := encodeArgs(p.sockaddr, uc, addr+codeLen, frameOff-codeLen, exit, addr, total, memfd)
	if err != nil {
		return nil, err
	}
	// The code is in place (mapCode); the blob's initialized data, its
	// arguments and the frame go into the writable rest.
	for _, w := range []struct {
		off uint64
		b   []byte
	}{{codeLen, blob[min(codeLen, uint64(len(blob))):]}, {blobArgs, args}, {frameOff, frame}} {
		if len(w.b) == 0 {
			continue
		}
		if err := ptrace.WriteMem(p.pid, addr+w.off, w.b); err != nil {
			return nil, fmt.Errorf("write parasite: %w", err)
		}
	}

	if err := p.start(addr + scratchOff); err != nil {
		return nil, err
	}
	if err := p.accept(); err != nil {
		if aerr := p.abort(); aerr != nil {
			err = fmt.Errorf("%w; then restoring the task: %v", err, aerr)
		}
		return nil, err
	}
	return p, nil
}

// Pid is the task the parasite runs in.
func (p *Parasite) Pid() int { return p.pid }

// Area is the parasite mapping: dumps must leave it out.
func (p *Parasite) Area() (addr, size uint64) { return p.area, p.areaLen }

// listen creates the control socket on a thread of its own carrying the
// target's socket label, so no other socket gets that label. If the label
// cannot be reset the thread is thrown away instead of being reused.
func (p *Parasite) listen(opts Options) error {
	label, err := opts.LSM.ProcessLabel(p.pid)
	if err != nil {
		return fmt.Errorf("task %d: control socket: %w", p.pid, err)
	}
	if testNoSocketLabel() {
		label = ""
	}
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return err
	}
	name := fmt.Sprintf("gockpt-parasite-%d-%d-%s", os.Getpid(), p.pid, hex.EncodeToString(rnd[:]))
	var addr string
	if opts.SocketDir != "" {
		addr = filepath.Join(opts.SocketDir, name)
		if len(addr) > 107 {
			return fmt.Errorf("control socket path %s is %d bytes, unix sockets take 107: use a shorter SocketDir", addr, len(addr))
		}
		p.sockaddr = append([]byte{unix.AF_UNIX, 0}, append([]byte(addr), 0)...)
	} else {
		p.sockaddr = append([]byte{unix.AF_UNIX, 0, 0}, name...)
		addr = "@" + name
	}
	type result struct {
		ln  *net.UnixListener
		err error
	}
	res := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		var r result
		if label != "" {
			if err := opts.LSM.SetSocketCreateLabel(label); err != nil {
				res <- result{err: fmt.Errorf("task %d: control socket: %w", p.pid, err)}
				return // the thread may carry a label: let it die
			}
		}
		r.ln, r.err = net.ListenUnix("unixpacket", &net.UnixAddr{Name: addr, Net: "unixpacket"})
		if testHookListening != nil {
			testHookListening()
		}
		if label != "" {
			if err := opts.LSM.SetSocketCreateLabel(""); err != nil {
				if r.ln != nil {
					r.ln.Close()
				}
				res <- result{err: fmt.Errorf("task %d: control socket: %w", p.pid, err)}
				return
			}
		}
		runtime.UnlockOSThread()
		if r.err != nil {
			r.err = fmt.Errorf("task %d: listen for the parasite on %s: %w", p.pid, addr, r.err)
		}
		res <- r
	}()
	r := <-res
	if r.err != nil {
		return r.err
	}
	p.ln = r.ln
	return nil
}

// testNoSocketLabel says whether GOCKPT_TEST_NO_SOCKET_LABEL=1 asks for a
// control socket without the target's label. It exists only for the VM
// proof in test/vm/selinux.sh, which shows the AVC denial a confined
// parasite meets when the socket keeps gockpt's own label; nothing else
// sets it.
func testNoSocketLabel() bool { return os.Getenv("GOCKPT_TEST_NO_SOCKET_LABEL") == "1" }

// start points the leader at the blob, blocks every signal and resumes it.
func (p *Parasite) start(stackTop uint64) error {
	r := p.regs
	enterBlob(&r, p.area+blobEntry, stackTop)
	if err := p.leader.SetSigmask(^uint64(0)); err != nil {
		return err
	}
	if err := p.leader.SetRegs(&r); err != nil {
		p.leader.SetSigmask(p.sigmask)
		return err
	}
	var err error
	if testHookBeforeStart != nil {
		err = testHookBeforeStart(p)
	}
	if err == nil {
		err = p.tr.Do(func() error { return unix.PtraceCont(p.leader.Tid, 0) })
	}
	if err != nil {
		p.leader.SetRegs(&p.regs)
		p.leader.SetSigmask(p.sigmask)
		p.leader.SetXstate(p.xstate)
		return fmt.Errorf("task %d: start parasite: %w", p.leader.Tid, err)
	}
	p.running = true
	return nil
}

// accept waits for the blob to connect, checking that the caller is the
// target (anyone in the namespace can connect to an abstract socket).
func (p *Parasite) accept() error {
	defer func() {
		p.ln.Close()
		p.ln = nil
	}()
	p.ln.SetDeadline(time.Now().Add(p.timeout))
	c, err := p.ln.AcceptUnix()
	if err != nil {
		return fmt.Errorf("task %d: parasite did not connect (status %s): %w", p.pid, p.status(), err)
	}
	var cred *unix.Ucred
	raw, err := c.SyscallConn()
	if err == nil {
		cerr := raw.Control(func(fd uintptr) {
			cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		})
		if err == nil {
			err = cerr
		}
	}
	if err != nil {
		c.Close()
		return fmt.Errorf("task %d: parasite connection: %w", p.pid, err)
	}
	if int(cred.Pid) != p.pid {
		c.Close()
		return fmt.Errorf("task %d: control socket connection came from pid %d, not from the parasite", p.pid, cred.Pid)
	}
	p.conn = c
	return nil
}

// status reads the progress the blob reports in its args area.
func (p *Parasite) status() string {
	b := make([]byte, 8)
	if err := ptrace.ReadMem(p.pid, p.area+blobArgs+argsStatus, b); err != nil {
		return "unknown"
	}
	switch s := int64(le.Uint64(b)); {
	case s == 0:
		return "not started"
	case s == 1:
		return "started"
	case s == 2:
		return "connected"
	case s == 3:
		return "curing"
	case s < 0:
		return fmt.Sprintf("failed: %v", syscall.Errno(-s))
	default:
		return fmt.Sprint(s)
	}
}

func (p *Parasite) closeSocket() {
	if p.conn != nil {
		p.conn.Close()
		p.conn = nil
	}
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
}

// call sends one request and returns the payload of its reply.
func (p *Parasite) call(c command, payload []byte) ([]byte, error) {
	if p.conn == nil || p.done {
		return nil, fmt.Errorf("task %d: parasite %v: not running", p.pid, c)
	}
	p.conn.SetDeadline(time.Now().Add(p.timeout))
	p.busy.Store(true)
	if _, err := p.conn.Write(encodeRequest(c, payload)); err != nil {
		return nil, fmt.Errorf("task %d: parasite %v: send: %w", p.pid, c, err)
	}
	return p.reply(c)
}

// read reads one message from the blob, waiting in poll(2) on the calling
// thread until the connection's deadline: the reply wakes this thread
// straight away, where waiting in Go's network poller takes a hop through
// another thread (a few hundred microseconds here, per command). A
// closed connection is io.EOF.
func (p *Parasite) read(buf []byte) (int, error) {
	deadline := time.Now().Add(p.timeout)
	return p.readUntil(buf, func() time.Time { return deadline })
}

// readUntil is read with a deadline that may move while it waits (it is
// looked at again at least every 100 ms): DumpPages waits for its reply as
// long as pages flow, however long that is.
func (p *Parasite) readUntil(buf []byte, deadline func() time.Time) (int, error) {
	rc, err := p.conn.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	var rerr error
	err = rc.Control(func(fd uintptr) {
		for {
			left := time.Until(deadline())
			if left <= 0 {
				rerr = os.ErrDeadlineExceeded
				return
			}
			pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			if _, err := unix.Poll(pfd, int(min(left, 100*time.Millisecond)/time.Millisecond)+1); err != nil && err != unix.EINTR {
				rerr = err
				return
			}
			n, _, rerr = unix.Recvfrom(int(fd), buf, 0)
			if rerr != unix.EAGAIN && rerr != unix.EINTR {
				return
			}
		}
	})
	switch {
	case err != nil:
		return 0, err
	case rerr != nil:
		return 0, rerr
	case n == 0 && len(buf) > 0:
		return 0, io.EOF
	}
	return n, nil
}

func (p *Parasite) reply(c command) ([]byte, error) {
	deadline := time.Now().Add(p.timeout)
	return p.replyUntil(c, func() time.Time { return deadline })
}

// replyUntil is reply with a deadline that may move (readUntil).
func (p *Parasite) replyUntil(c command, deadline func() time.Time) ([]byte, error) {
	buf := make([]byte, maxMsg)
	n, err := p.readUntil(buf, deadline)
	if err != nil {
		return nil, fmt.Errorf("task %d: parasite %v: no reply (status %s): %w", p.pid, c, p.status(), err)
	}
	p.busy.Store(false) // the blob answered: it is back waiting
	out, errno, err := decodeReply(c, buf[:n])
	if err != nil {
		return nil, fmt.Errorf("task %d: parasite: %w", p.pid, err)
	}
	if errno != 0 {
		return out, &RemoteError{Pid: p.pid, Cmd: c.String(), Errno: errno}
	}
	return out, nil
}

// DumpSigactions returns the handlers of signals 1 to 64, signal n at index
// n-1. SIGKILL and SIGSTOP are left zero.
func (p *Parasite) DumpSigactions() ([]Sigaction, error) {
	b, err := p.call(cmdSigactions, nil)
	if err != nil {
		return nil, err
	}
	return decodeSigactions(b)
}

// DumpItimers returns ITIMER_REAL, ITIMER_VIRTUAL and ITIMER_PROF.
func (p *Parasite) DumpItimers() ([3]Itimer, error) {
	b, err := p.call(cmdItimers, nil)
	if err != nil {
		return [3]Itimer{}, err
	}
	return decodeItimers(b)
}

// DumpPosixTimers returns the timers ids (from /proc/PID/timers), in order.
func (p *Parasite) DumpPosixTimers(ids []int32) ([]PosixTimer, error) {
	var out []PosixTimer
	for len(ids) > 0 {
		n := min(len(ids), maxTimersPerReq)
		b, err := p.call(cmdPosixTimers, encodeTimerIDs(ids[:n]))
		if err != nil {
			return nil, err
		}
		ts, err := decodePosixTimers(b, n)
		if err != nil {
			return nil, err
		}
		out = append(out, ts...)
		ids = ids[n:]
	}
	return out, nil
}

// DumpMisc returns pdeathsig, dumpable, subreaper, umask and the leader's
// tid address and sigaltstack.
func (p *Parasite) DumpMisc() (Misc, error) {
	b, err := p.call(cmdMisc, nil)
	if err != nil {
		return Misc{}, err
	}
	m, err := decodeMisc(b)
	if err != nil {
		return Misc{}, err
	}
	// The blob runs on its own stack, so its sigaltstack flags never say
	// SS_ONSTACK: the leader's own stack pointer tells.
	m.Altstack.Flags |= onAltstack(m.Altstack, ptrace.SP(&p.regs))
	return m, nil
}

// Task is what DumpTask reads in one command.
type Task struct {
	Sigactions []Sigaction // signal n at index n-1
	Itimers    [3]Itimer   // ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF
	Misc       Misc
}

// DumpTask returns what DumpSigactions, DumpItimers and DumpMisc do, with
// one command instead of three.
func (p *Parasite) DumpTask() (Task, error) {
	b, err := p.call(cmdTask, nil)
	if err != nil {
		return Task{}, err
	}
	const saLen, itLen = 64 * sigactionSize, 3 * itimerSize
	if len(b) != saLen+itLen+miscSize {
		return Task{}, fmt.Errorf("task %d: task reply has %d bytes, want %d", p.pid, len(b), saLen+itLen+miscSize)
	}
	var t Task
	if t.Sigactions, err = decodeSigactions(b[:saLen]); err != nil {
		return Task{}, err
	}
	if t.Itimers, err = decodeItimers(b[saLen : saLen+itLen]); err != nil {
		return Task{}, err
	}
	if t.Misc, err = decodeMisc(b[saLen+itLen:]); err != nil {
		return Task{}, err
	}
	t.Misc.Altstack.Flags |= onAltstack(t.Misc.Altstack, ptrace.SP(&p.regs))
	return t, nil
}

// DumpThread reads what only another thread of the task can tell: its tid
// address, sigaltstack, timer slack, securebits and arch settings. The
// thread is stopped; the syscalls are injected in it, all in one go (the
// leader runs the blob: its values come from DumpMisc).
func (p *Parasite) DumpThread(te *ptrace.Tracee) (ThreadInfo, error) {
	if te.Tgid != p.pid {
		return ThreadInfo{}, fmt.Errorf("thread %d belongs to task %d, the parasite runs in %d", te.Tid, te.Tgid, p.pid)
	}
	if te.Tid == p.leader.Tid {
		return ThreadInfo{}, fmt.Errorf("thread %d runs the parasite: its values come from DumpMisc", te.Tid)
	}
	if p.done {
		return ThreadInfo{}, fmt.Errorf("task %d: parasite already cured", p.pid)
	}
	calls := append([]ptrace.Injection{
		{Nr: unix.SYS_PRCTL, Args: []uint64{unix.PR_GET_TID_ADDRESS, p.scratch}},
		{Nr: unix.SYS_SIGALTSTACK, Args: []uint64{0, p.scratch + 8}},
		{Nr: unix.SYS_PRCTL, Args: []uint64{unix.PR_GET_TIMERSLACK}},
		{Nr: unix.SYS_PRCTL, Args: []uint64{unix.PR_GET_SECUREBITS}},
		{Nr: unix.SYS_GET_MEMPOLICY, Args: []uint64{p.scratch + 32, 0, 0, 0, 0}},
	}, archThreadCalls()...)
	r, err := te.InjectAll(calls...)
	if err != nil {
		return ThreadInfo{}, err
	}
	if e := ptrace.Errno(r[0]); e != 0 {
		return ThreadInfo{}, fmt.Errorf("thread %d: prctl(PR_GET_TID_ADDRESS): %w", te.Tid, e)
	}
	if e := ptrace.Errno(r[1]); e != 0 {
		return ThreadInfo{}, fmt.Errorf("thread %d: sigaltstack: %w", te.Tid, e)
	}
	if e := ptrace.Errno(r[3]); e != 0 {
		return ThreadInfo{}, fmt.Errorf("thread %d: prctl(PR_GET_SECUREBITS): %w", te.Tid, e)
	}
	b := make([]byte, 36)
	if err := ptrace.ReadMem(p.pid, p.scratch, b); err != nil {
		return ThreadInfo{}, err
	}
	ti := ThreadInfo{Tid: te.Tid, TidAddress: le.Uint64(b), Altstack: decodeStack(b[8:]),
		TimerSlack: r[2], Securebits: r[3], Mempolicy: r[4]}
	if ptrace.Errno(r[4]) == 0 {
		ti.Mempolicy = uint64(le.Uint32(b[32:]))
	}
	archThreadResults(&ti, r[5:])
	return ti, nil
}

// sigaltstack(2) flags.
const (
	ssOnstack    = 1
	ssDisable    = 2
	ssAutodisarm = 1 << 31
)

// onAltstack is the SS_ONSTACK flag sigaltstack would give a thread whose
// stack pointer is sp, as the kernel's on_sig_stack reckons it: a stack
// that disarms itself is never reported as in use; otherwise sp is on it
// when it lies in (sp, sp+size], the stack growing down.
func onAltstack(s Stack, sp uint64) int32 {
	if s.Flags&ssDisable != 0 || s.Size == 0 || uint32(s.Flags)&ssAutodisarm != 0 {
		return 0
	}
	if sp > s.SP && sp-s.SP <= s.Size {
		return ssOnstack
	}
	return 0
}

// ErrCured is returned by Cure when the parasite is already gone.
var ErrCured = errors.New("parasite already cured")

// Cure stops the blob and puts the leader back exactly as it was at Inject
// (registers, xsave area, signal mask), and unmaps the parasite. The task is
// left stopped under ptrace; the caller detaches. Whatever fails, Cure tries
// to restore the task before returning the error.
func (p *Parasite) Cure() error {
	if p.done {
		return fmt.Errorf("task %d: %w", p.pid, ErrCured)
	}
	defer p.closeSocket()
	if p.park != 0 && p.conn != nil && !p.busy.Load() {
		if done, err := p.parkCure(); done {
			return err
		}
	}
	st, err := p.interrupt()
	if err != nil {
		return err
	}
	var cureErr error
	switch {
	case st.crash != 0:
		cureErr = p.crashError(st)
	case p.conn == nil:
		cureErr = fmt.Errorf("task %d: parasite connection already closed", p.pid)
	case !p.busy.Load():
		// The blob waits for the next command: no command runs, nothing
		// of the task's is half done. The task gets its own registers,
		// xsave area and mask back from here, and the blob's socket is
		// closed, instead of stepping the blob through its own way out
		// (a dozen ptrace stops).
		return p.quickCure()
	default:
		// A command may still run (gockpt gave up on its reply): the
		// blob finishes it and then Fini, which closes what it holds.
		p.conn.SetDeadline(time.Now().Add(p.timeout))
		if _, err := p.conn.Write(encodeRequest(cmdFini, nil)); err != nil {
			cureErr = fmt.Errorf("task %d: parasite Fini: send: %w", p.pid, err)
		} else if st, err = p.runToSigreturn(); err != nil {
			cureErr = err
		} else if st.crash != 0 {
			cureErr = p.crashError(st)
		} else if _, err := p.reply(cmdFini); err != nil {
			cureErr = err
		}
	}
	if err := p.restoreOrUnmap(st.crash != 0); err != nil {
		if cureErr != nil {
			return fmt.Errorf("%w; then restoring the task: %v", cureErr, err)
		}
		return err
	}
	return cureErr
}

// parkCure cures a blob that waits for the next command by sending it
// GK_CMD_PARK: the blob drops a SIGPIPE it raised and jumps to the parking
// code's way out, which unmaps the whole area, closes the blob's socket and
// parks the thread in pause. The EOF gockpt reads says the area is gone;
// the leader is stopped and gets its registers, xsave area and mask back:
// one command and one stop, where quickCure takes a stop and two injected
// syscalls. done is false when nothing happened and Cure's other ways
// should be taken (the command could not be sent).
func (p *Parasite) parkCure() (done bool, err error) {
	p.conn.SetDeadline(time.Now().Add(p.timeout))
	if _, err := p.conn.Write(encodeRequest(cmdPark, nil)); err != nil {
		return false, nil
	}
	var b [hdrSize]byte
	n, rerr := p.read(b[:])
	st, err := p.interrupt()
	if err != nil {
		return true, err
	}
	if st.crash != 0 {
		err := p.crashError(st)
		if rerr := p.restore(); rerr != nil {
			return true, fmt.Errorf("%w; then restoring the task: %v", err, rerr)
		}
		return true, err
	}
	regs, err := p.leader.GetRegs()
	if err != nil {
		return true, err
	}
	exit, pc := p.park+ptrace.ParkingExit, ptrace.PC(&regs)
	switch {
	case rerr == io.EOF && n == 0 && ptrace.ParkedAfterExit(p.park, pc):
		// Unmapped and closed: the way out went as it should.
	case pc > exit && pc < exit+ptrace.ParkingCodeLen-ptrace.ParkingExit:
		// Stopped on the way out (it took longer than the deadline):
		// the area is gone, the socket may still be open.
		if r, err := p.leader.Syscall(unix.SYS_CLOSE, ptrace.ParkingExitFd(&regs)); err != nil {
			return true, err
		} else if e := ptrace.Errno(r); e != 0 && !errors.Is(e, unix.EBADF) {
			return true, fmt.Errorf("task %d: close the parasite's socket: %w", p.pid, e)
		}
	default:
		// The blob refused the command, or did not get to the way out
		// in time: the area is still there.
		return true, p.quickCure()
	}
	var errs []error
	if err := p.leader.SetRegs(&p.regs); err != nil {
		errs = append(errs, err)
	}
	if err := p.leader.SetXstate(p.xstate); err != nil {
		errs = append(errs, err)
	}
	if err := p.leader.SetSigmask(p.sigmask); err != nil {
		errs = append(errs, err)
	}
	p.running = false
	p.done = true
	p.watchdog.Unmapped(p.pid)
	return true, errors.Join(errs...)
}

// quickCure puts the stopped leader back as it was at Inject, closes the
// blob's socket in it and unmaps the area; a SIGPIPE the blob raised is
// dropped first, as the blob's own way out does.
func (p *Parasite) quickCure() error {
	b := make([]byte, 4)
	if err := ptrace.ReadMem(p.pid, p.area+blobArgs+argsSock, b); err != nil {
		return fmt.Errorf("task %d: read the parasite's socket: %w", p.pid, err)
	}
	if sock := int32(le.Uint32(b)); sock >= 0 {
		if err := p.syscall("close the parasite's socket", unix.SYS_CLOSE, uint64(sock)); err != nil {
			return err
		}
	}
	if !p.sigpipe {
		pending, err := sigpipePending(p.pid, p.leader.Tid)
		if err != nil {
			return err
		}
		if pending {
			// rt_sigtimedwait({SIGPIPE}, NULL, {0, 0}) in the scratch page.
			args := le.AppendUint64(nil, 1<<(unix.SIGPIPE-1))
			if err := ptrace.WriteMem(p.pid, p.scratch, append(args, make([]byte, 16)...)); err != nil {
				return err
			}
			if err := p.syscall("drop the parasite's SIGPIPE", unix.SYS_RT_SIGTIMEDWAIT, p.scratch, 0, p.scratch+8, 8); err != nil {
				return err
			}
		}
	}
	return p.restore()
}

// syscall injects a syscall into the leader and names it in its error.
func (p *Parasite) syscall(what string, nr uint64, args ...uint64) error {
	r, err := p.leader.Syscall(nr, args...)
	if err != nil {
		return fmt.Errorf("task %d: %s: %w", p.pid, what, err)
	}
	if e := ptrace.Errno(r); e != 0 {
		return fmt.Errorf("task %d: %s: %w", p.pid, what, e)
	}
	return nil
}

// sigpipePending tells whether SIGPIPE is pending for thread tid or its
// process.
func sigpipePending(pid, tid int) (bool, error) {
	st, err := proc.ReadTaskStatus(pid, tid)
	if err != nil {
		return false, fmt.Errorf("task %d: %w", pid, err)
	}
	bit := uint64(1) << (unix.SIGPIPE - 1)
	return (st.SigPnd|st.ShdPnd)&bit != 0, nil
}

// restoreOrUnmap puts the leader back unless the blob already did (its
// rt_sigreturn ran: the leader is outside the area, on its own code), and
// unmaps the area. After a crash the registers are restored wherever the
// blob went.
func (p *Parasite) restoreOrUnmap(crashed bool) error {
	r, err := p.leader.GetRegs()
	if err != nil {
		return err
	}
	if !crashed && ptrace.PC(&r)-p.area >= p.areaLen {
		p.running = false
		return p.unmap()
	}
	return p.restore()
}

// stopState is how the leader stopped.
type stopState struct {
	crash syscall.Signal // a fault signal the blob took, or 0
	pc    uint64
}

func (p *Parasite) crashError(st stopState) error {
	return fmt.Errorf("task %d: parasite crashed with %v at %#x (parasite at %#x, status %s)", p.pid, st.crash, st.pc, p.area, p.status())
}

// interrupt stops the running leader (PTRACE_INTERRUPT).
func (p *Parasite) interrupt() (stopState, error) {
	var st stopState
	err := p.tr.Do(func() error {
		tid := p.leader.Tid
		if err := unix.PtraceInterrupt(tid); err != nil {
			return fmt.Errorf("task %d: interrupt parasite: %w", tid, err)
		}
		ws, err := waitStop(tid, p.timeout)
		if err != nil {
			return fmt.Errorf("task %d: interrupt parasite: %w", tid, err)
		}
		if ptrace.Event(ws) != unix.PTRACE_EVENT_STOP && ws.StopSignal() != unix.SIGTRAP|0x80 {
			// A signal-delivery-stop: every signal is blocked, so it is a
			// fault in the blob.
			st, err = faultStop(tid, ws)
		}
		return err
	})
	return st, err
}

func faultStop(tid int, ws unix.WaitStatus) (stopState, error) {
	var r ptrace.Regs
	if err := unix.PtraceGetRegs(tid, &r); err != nil {
		return stopState{}, err
	}
	return stopState{crash: ws.StopSignal(), pc: ptrace.PC(&r)}, nil
}

// runToSigreturn resumes the leader from stop to syscall stop until the
// blob enters rt_sigreturn, and cancels that syscall: the leader ends in the
// syscall-exit stop, still on the blob's registers.
func (p *Parasite) runToSigreturn() (stopState, error) {
	var st stopState
	err := p.tr.Do(func() error {
		tid := p.leader.Tid
		for i := 0; i < 1000; i++ {
			if err := unix.PtraceSyscall(tid, 0); err != nil {
				return fmt.Errorf("task %d: resume parasite: %w", tid, err)
			}
			ws, err := waitStop(tid, p.timeout)
			if err != nil {
				return fmt.Errorf("task %d: wait for parasite exit: %w", tid, err)
			}
			switch {
			case ws.StopSignal() == unix.SIGTRAP|0x80:
				info, err := getSyscallInfo(tid)
				if err != nil {
					return fmt.Errorf("task %d: syscall info: %w", tid, err)
				}
				if info.op != syscallInfoEntry || info.nr != unix.SYS_RT_SIGRETURN || info.ip-p.area >= p.areaLen {
					continue
				}
				var r ptrace.Regs
				if err := unix.PtraceGetRegs(tid, &r); err != nil {
					return err
				}
				ptrace.ClearSyscall(&r) // skip it: ptrace restores the task
				if err := unix.PtraceSetRegs(tid, &r); err != nil {
					return err
				}
				if err := unix.PtraceSyscall(tid, 0); err != nil {
					return err
				}
				ws, err := waitStop(tid, p.timeout)
				if err != nil {
					return fmt.Errorf("task %d: wait for cancelled rt_sigreturn: %w", tid, err)
				}
				if ws.StopSignal() != unix.SIGTRAP|0x80 {
					return fmt.Errorf("task %d: stopped by %v after cancelling rt_sigreturn", tid, ws.StopSignal())
				}
				return nil
			case ptrace.Event(ws) == unix.PTRACE_EVENT_STOP:
				continue
			default:
				st, err = faultStop(tid, ws)
				return err
			}
		}
		return fmt.Errorf("task %d: parasite did not exit after 1000 syscalls", tid)
	})
	return st, err
}

// waitStop waits for tid to report a stop, at most timeout. Runs on the
// tracer thread; a task that never stops cannot wedge it.
func waitStop(tid int, timeout time.Duration) (unix.WaitStatus, error) {
	for {
		ws, ok, err := ptrace.WaitTimeout(tid, timeout)
		switch {
		case err != nil:
			return ws, err
		case !ok:
			return ws, fmt.Errorf("no stop within %v", timeout)
		case ws.Exited() || ws.Signaled():
			return ws, fmt.Errorf("task ended (%v)", ws)
		case ws.Stopped():
			return ws, nil
		}
	}
}

// restore puts back the leader's registers, xsave area and signal mask and
// unmaps the parasite. The leader must be in a ptrace stop.
func (p *Parasite) restore() error {
	var errs []error
	if err := p.leader.SetRegs(&p.regs); err != nil {
		errs = append(errs, err)
	}
	if err := p.leader.SetXstate(p.xstate); err != nil {
		errs = append(errs, err)
	}
	if err := p.leader.SetSigmask(p.sigmask); err != nil {
		errs = append(errs, err)
	}
	if err := p.unmap(); err != nil {
		errs = append(errs, err)
	}
	p.running = false
	return errors.Join(errs...)
}

func (p *Parasite) unmap() error {
	p.done = true
	r, err := p.leader.Syscall(unix.SYS_MUNMAP, p.area, p.areaLen)
	if err != nil {
		return err
	}
	if e := ptrace.Errno(r); e != 0 {
		return fmt.Errorf("task %d: unmap parasite %#x-%#x: %w", p.pid, p.area, p.area+p.areaLen, e)
	}
	p.watchdog.Unmapped(p.pid)
	return nil
}

// abort brings back a leader whose blob did not connect: stop it wherever
// it is and restore. A blob whose connect failed has already cured itself
// and the task runs its own code again: then only the area is left to undo.
func (p *Parasite) abort() error {
	p.closeSocket()
	st, err := p.interrupt()
	if err != nil {
		return err
	}
	// A blob that never got to close its memfd leaves it to us; one that
	// cured itself has unmapped its arguments, having closed it first.
	b := make([]byte, 4)
	if ptrace.ReadMem(p.pid, p.area+blobArgs+argsMemfd, b) == nil {
		if fd := int32(le.Uint32(b)); fd >= 0 {
			p.closeMemfd(int(fd))
		}
	}
	return p.restoreOrUnmap(st.crash != 0)
}

// closeMemfd closes the parasite memfd in the stopped leader.
func (p *Parasite) closeMemfd(fd int) {
	p.leader.Syscall(unix.SYS_CLOSE, uint64(fd))
}

// parasiteMemfd names the memfd the parasite's code is mapped from.
const parasiteMemfd = "gockpt-parasite"

// mapCode maps the blob's code at addr, read and execute, over the start of
// the area. It comes from a memfd the task creates: SELinux refuses
// executable anonymous memory (execmem) even to unconfined domains on many
// systems, but lets a task map a file of its own executable. gockpt fills
// the memfd through /proc/PID/fd, then the task maps it; the blob closes
// it when it starts (gk_args.memfd).
func (p *Parasite) mapCode(leader *ptrace.Tracee, addr, codeLen uint64) (memfd int, err error) {
	call := func(what string, nr uint64, args ...uint64) (uint64, error) {
		r, err := leader.Syscall(nr, args...)
		if err == nil && ptrace.Errno(r) != 0 {
			err = ptrace.Errno(r)
		}
		if err != nil {
			return 0, fmt.Errorf("task %d: %s: %w", p.pid, what, err)
		}
		return r, nil
	}
	name := append([]byte(parasiteMemfd), 0)
	if err := ptrace.WriteMem(p.pid, p.scratch, name); err != nil {
		return -1, err
	}
	fd, err := call("memfd_create for the parasite", unix.SYS_MEMFD_CREATE, p.scratch, unix.MFD_CLOEXEC)
	if err != nil {
		return -1, err
	}
	defer func() {
		if err != nil {
			call("close the parasite memfd", unix.SYS_CLOSE, fd)
		}
	}()
	f, err := os.OpenFile(fmt.Sprintf("/proc/%d/fd/%d", p.pid, fd), os.O_RDWR, 0)
	if err != nil {
		return -1, fmt.Errorf("task %d: open the parasite memfd: %w", p.pid, err)
	}
	code := make([]byte, codeLen)
	copy(code, blob)
	_, err = f.Write(code)
	f.Close()
	if err != nil {
		return -1, fmt.Errorf("task %d: fill the parasite memfd: %w", p.pid, err)
	}
	if _, err = call(fmt.Sprintf("map parasite code at %#x", addr), unix.SYS_MMAP, addr, codeLen,
		unix.PROT_READ|unix.PROT_EXEC, unix.MAP_SHARED|unix.MAP_FIXED, fd, 0); err != nil {
		return -1, err
	}
	return int(fd), nil
}

// freeRange finds a hole of size bytes in task pid's address space, above
// 4 GiB (below it live small non-PIE programs and their heaps) and below the
// top of user space.
func freeRange(pid int, size uint64) (uint64, error) {
	vmas, err := proc.ReadMaps(pid)
	if err != nil {
		return 0, err
	}
	const low, high = 1 << 32, 1 << 46
	cand := uint64(low)
	for _, v := range vmas {
		if v.End <= cand {
			continue
		}
		if v.Start >= cand+size {
			break
		}
		cand = v.End
	}
	if cand+size > high {
		return 0, fmt.Errorf("task %d: no free %d-byte range for the parasite", pid, size)
	}
	return cand, nil
}
