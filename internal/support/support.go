// Package support is the one list of what gockpt checkpoints and what it
// refuses, by kind of object a process tree can hold. Dump's refusals take
// their advice from here and `gockpt check` prints the list, so the two
// never disagree.
package support

import (
	"fmt"
	"strings"
)

// Kind names one kind of object.
type Kind string

// Kinds of objects a tree can hold. The order of Objects is the order
// `gockpt check` shows them in.
const (
	Tasks          Kind = "tasks"
	PrivateMemory  Kind = "private-memory"
	SharedFileMaps Kind = "shared-file-mappings"
	RegularFiles   Kind = "regular-files"
	DeletedFiles   Kind = "deleted-files"
	Pipes          Kind = "pipes"
	FIFOs          Kind = "fifos"
	CharDevices    Kind = "character-devices"
	Eventfd        Kind = "eventfd"
	Epoll          Kind = "epoll"
	Pidfds         Kind = "pidfds"
	UTSNamespace   Kind = "uts-namespaces"

	UnixSockets Kind = "unix-sockets"
	// UnixExternal: a unix socket whose peer is outside the tree.
	UnixExternal Kind = "unix-sockets-external"
	// UnixPending: a connection waiting in a listener's backlog that
	// restore could not make again.
	UnixPending Kind = "unix-pending-connections"
	// UnixQueueExtras: fds in flight or credentials in a unix queue.
	UnixQueueExtras Kind = "unix-queue-fds-creds"
	// UnixOddState: a unix socket restore cannot rebuild (bound to a
	// relative path, connected to a socket that is gone).
	UnixOddState Kind = "unix-sockets-unreachable"
	// NetlinkSockets are dumped; NetlinkQueues, messages queued to one,
	// are not.
	NetlinkSockets Kind = "netlink-sockets"
	NetlinkQueues  Kind = "netlink-queues"
	// ShellJobs: a job of a shell, on the shell's terminal.
	ShellJobs Kind = "shell-jobs"
	// PtyPairs: pseudo-terminals whose master the tree holds.
	PtyPairs   Kind = "pty-pairs"
	TCPSockets Kind = "tcp-sockets"
	// InetSockets: TCP listeners and unconnected TCP sockets, UDP
	// sockets; TCPPending: connections a listener has not accepted.
	InetSockets Kind = "inet-sockets"
	TCPPending  Kind = "tcp-pending-connections"
	// TCPConnecting: a connection still being opened (SYN_SENT);
	// TCPOddState: a TCP socket in a state repair mode cannot make.
	TCPConnecting Kind = "tcp-connecting"
	TCPOddState   Kind = "tcp-other-states"
	// MPTCPConnections: a Multipath TCP connection (listeners and
	// sockets not connected are kept).
	MPTCPConnections Kind = "mptcp-connections"
	UDPSockets       Kind = "udp-sockets"
	OtherSockets     Kind = "other-sockets"
	Terminals        Kind = "terminals"
	FileLocks        Kind = "file-locks"
	Leases           Kind = "file-leases"
	SharedAnon       Kind = "shared-anonymous-memory"
	// SharedAnonNamed: shared anonymous memory named with
	// PR_SET_VMA_ANON_NAME ([anon_shmem:NAME]).
	SharedAnonNamed Kind = "named-shared-anonymous-memory"
	SysVShm         Kind = "sysv-shared-memory"
	Memfd           Kind = "memfd"
	Signalfd        Kind = "signalfd"
	Timerfd         Kind = "timerfd"
	Inotify         Kind = "inotify"
	Fanotify        Kind = "fanotify"
	// TimerfdCancelTicks: a timerfd set with TFD_TIMER_CANCEL_ON_SET
	// that has unread expirations (or a clock change).
	TimerfdCancelTicks Kind = "timerfd-cancel-on-set-ticks"
	// InotifyQueued: an inotify instance with events not read yet.
	InotifyQueued Kind = "inotify-queued-events"
	// InotifyUnreachable: an inotify watch on a file restore cannot open
	// again by file handle.
	InotifyUnreachable Kind = "inotify-unreachable-watches"
	// FanotifyQueued: a fanotify group with events not read yet.
	FanotifyQueued Kind = "fanotify-queued-events"
	// FanotifyUnkeptMarks: a fanotify mark CRIU's image has no place for
	// (filesystem, mount namespace) or restore could not set again.
	FanotifyUnkeptMarks Kind = "fanotify-unkept-marks"
	Userfaultfd         Kind = "userfaultfd"
	Pidfd               Kind = "pidfd"
	IOUring             Kind = "io_uring"
	BPF                 Kind = "bpf"
	OtherAnonInode      Kind = "other-anon-inodes"
	SpecialFiles        Kind = "special-files"
	Namespaces          Kind = "other-namespaces"
	AsyncIO             Kind = "aio"
	Hugetlb             Kind = "hugetlb"
	DeviceMaps          Kind = "device-mappings"
	Uprobes             Kind = "uprobes"
	SigioOwner          Kind = "sigio-owner-outside"
	// EpollClosedTargets: an epoll set watching a file the task no
	// longer has an fd on.
	EpollClosedTargets Kind = "epoll-closed-targets"
	// SharedFdTables: an fd table shared other than by a parent and the
	// children it cloned with CLONE_FILES.
	SharedFdTables   Kind = "shared-fd-tables"
	SpecialMaps      Kind = "special-mappings"
	DeletedPaths     Kind = "deleted-exe"
	SchedDeadline    Kind = "sched-deadline"
	CPUAffinity      Kind = "cpu-affinity"
	IOPriority       Kind = "io-priority"
	TimerSlack       Kind = "timer-slack"
	CoredumpFilter   Kind = "coredump-filter"
	Autogroup        Kind = "autogroup-nice"
	LSMPending       Kind = "lsm-pending-labels"
	MDWE             Kind = "mdwe"
	NUMAPolicy       Kind = "numa-policy"
	THPExceptAdvised Kind = "thp-disable-except-advised"
	// SyscallUserDispatch: PR_SET_SYSCALL_USER_DISPATCH on in a thread.
	SyscallUserDispatch Kind = "syscall-user-dispatch"
	// KSMMergeAny: prctl(PR_SET_MEMORY_MERGE, 1), KSM for all of the
	// process's memory.
	KSMMergeAny Kind = "ksm-merge-any"
	// LeaderlessGroups: a process group of a session led in the tree whose
	// leader is no longer in it.
	LeaderlessGroups Kind = "leaderless-process-groups"
	// CPUIDFaulting: arch_prctl(ARCH_SET_CPUID, 0) in a thread.
	CPUIDFaulting Kind = "cpuid-faulting"
)

// Object is one kind of object and what gockpt does with it.
type Object struct {
	Kind Kind `json:"kind"`
	// Label is how people call it, as `gockpt check` prints it and as
	// refusals say "gockpt does not dump LABEL".
	Label string `json:"label"`
	// Dumped: kept exactly by dump and restore. Otherwise dump refuses a
	// tree that holds one, before touching it.
	Dumped bool `json:"dumped"`
	// Detail says what is kept (when dumped) or what to do instead (when
	// refused): the change to make in the tree before dumping.
	Detail string `json:"detail"`
	// CRIU is the CRIU option that checkpoints it, for users who know
	// CRIU; empty when CRIU needs none.
	CRIU string `json:"criu_option,omitempty"`
}

// Optional is an option (spelled as CRIU's) without which dump refuses an
// object it would keep, and what to advise then.
type Optional struct {
	Option, Advice string
}

// optional are the dumped kinds dump keeps only when asked.
var optional = map[Kind]Optional{
	FileLocks:  {"--file-locks", "release the lock before dumping, or dump and restore with --file-locks"},
	TCPSockets: {"--tcp-established", "end the connection before dumping, or dump and restore with --tcp-established"},
}

// OptionOf says which option dump needs to keep objects of kind k; ok is
// false for kinds it keeps (or refuses) whatever the options.
func OptionOf(k Kind) (o Optional, ok bool) {
	o, ok = optional[k]
	return o, ok
}

// Objects lists every kind, dumped ones first.
var Objects = []Object{
	{Tasks, "processes and threads", true, "PIDs, sessions, groups, zombies, stopped tasks (with their stop signal), fd tables shared with CLONE_FILES, registers with xsave, signals, timers (also per thread), rlimits, credentials, loginuid, oom_score_adj, scheduling policy, membarrier registrations, seccomp, SELinux labels, chroot", ""},
	{PrivateMemory, "private memory", true, "anonymous, heap, stack, private file mappings, private hugetlb, AIO rings; copy-on-write sharing after fork, madvise flags and guard regions kept; incremental with pre-dump", ""},
	{SharedFileMaps, "shared file mappings", true, "the mapping and the file's open mode; the data stays in the file", ""},
	{RegularFiles, "regular files and directories", true, "path, position, flags, the owner for SIGIO; O_PATH fds; /proc files of tasks of the tree", ""},
	{DeletedFiles, "deleted open files", true, "files (data up to --ghost-limit, holes kept), FIFOs, devices, directories, working directories and mappings of deleted files; a file another hard link still names is reopened through a new link", ""},
	{Pipes, "pipes", true, "both ends, sharing, bytes in flight", ""},
	{FIFOs, "FIFOs", true, "path, bytes in flight", ""},
	{CharDevices, "character devices", true, "reopened by path (terminals excepted)", ""},
	{Eventfd, "eventfd", true, "counter and flags", ""},
	{Epoll, "epoll", true, "watched fds and events; a watched file whose fd was closed is registered under the fd that holds it now", ""},
	{Pidfds, "pidfds of the tree's processes and threads", true, "the process or thread (PIDFD_THREAD), PIDFD_NONBLOCK, close-on-exec; of a reaped process, how it ended", ""},
	{Signalfd, "signalfd", true, "signal mask and flags", ""},
	{Timerfd, "timerfd", true, "clock, interval, time left (restore re-arms with it, as CRIU does: the time between dump and restore does not count), unread expirations, TFD_TIMER_ABSTIME and TFD_TIMER_CANCEL_ON_SET", ""},
	{Inotify, "inotify", true, "flags and watches (mask, watch descriptor), each set again on the file its file handle opens", ""},
	{Fanotify, "fanotify", true, "group flags and event flags; inode marks, each set again on the file its file handle opens, and mount marks, on the mount of the same ID; their masks, ignored masks and mark flags (FAN_MARK_IGNORED_SURV_MODIFY, FAN_MARK_IGNORE, FAN_MARK_EVICTABLE)", ""},
	{Memfd, "memfd files", true, "held as fds and mapped (shared or private): name, contents (holes kept), size, seals, owner and mode, position and flags of each open file description; one inode however many fds, mappings and tasks share it", ""},
	{UTSNamespace, "UTS namespaces", true, "host and domain name", ""},
	{PtyPairs, "pseudo-terminal pairs inside the tree", true, "both ends at the same index (where it is free), termios, window size, packet mode, lock and exclusive mode, the session whose controlling terminal the slave is, and its foreground group", ""},
	{ShellJobs, "shell jobs on their terminal (--shell-job)", true, "a job running in a shell's session: its fds on the terminal and /dev/tty with the terminal's modes; restore --shell-job puts it in restore's session and process group (its own if it led one) on restore's terminal, in the foreground if it was", "--shell-job"},
	{SharedAnon, "shared anonymous memory", true, "MAP_SHARED|MAP_ANONYMOUS and MAP_SHARED /dev/zero areas: one object across the tasks that map it (a write of one is seen by the others after restore), its pages written once", ""},
	{InetSockets, "TCP listeners and UDP sockets (IPv4, IPv6)", true, "Multipath TCP listeners too (Go listens with it); address and port (bound again at restore, which names the address when it is missing or the port taken), listen backlog, UDP peer (datagrams waiting to be read are dropped and counted: a receive queue cannot be filled again), SO_REUSEADDR/REUSEPORT, keepalive and its timers, TCP_NODELAY/CORK, buffer sizes, timeouts, IP_TOS/TTL (IPv6 traffic class and hops), IPV6_V6ONLY, SO_BINDTODEVICE, SO_MARK, SO_PRIORITY, linger", ""},
	{NetlinkSockets, "netlink sockets", true, "protocol (route, uevent, generic, ...), socket type, bound port id, multicast groups, destination, NETLINK_* options, buffer sizes and timeouts", ""},
	{UnixSockets, "unix sockets", true, "stream, dgram and seqpacket: socketpairs within and between tasks, names (path, abstract, deleted path, an accepted socket's) and unbound, listeners with the connections waiting in their backlog, queued data with datagram boundaries and senders, shutdown, options (buffer sizes, timeouts, SO_PASSCRED, SO_PEEK_OFF, SO_PRIORITY, SO_RCVLOWAT, SO_MARK); a dgram peer outside the tree with --ext-unix-sk", ""},
	{TCPSockets, "established TCP connections", true, "with --tcp-established (dump and restore), IPv4 and IPv6, either end in the tree or both: sequence numbers, unread and unacked data, data not sent yet, MSS, window scale, SACK, timestamps, the window, half-closed states (FIN-WAIT-1/2, CLOSE-WAIT, LAST-ACK, CLOSING), options; the network lock (nftables) drops their packets from the freeze until restore lets them go; --tcp-close makes them closed instead", "--tcp-established"},
	{FileLocks, "file locks", true, "with --file-locks (dump and restore): flock, POSIX (per process, byte ranges, read and write) and OFD locks, each taken again through the fd and by the task that held it, before any task of the tree runs", "--file-locks"},

	{UnixExternal, "unix sockets connected outside the dumped tree", false, "dump the tree that holds the peer too, or close the socket before dumping", "--ext-unix-sk"},
	{UnixPending, "unix connections waiting in a backlog that restore cannot make again", false, "let the listener accept the connection before dumping", ""},
	{UnixQueueExtras, "fds in flight (SCM_RIGHTS) and credentials queued in unix sockets", false, "let the task read its queue before dumping", ""},
	{UnixOddState, "unix sockets bound to relative paths or connected to sockets that are gone", false, "close the socket before dumping", ""},
	{TCPPending, "TCP connections waiting to be accepted", false, "let the listener accept them before dumping, or leave them out with --skip-in-flight (their clients see them reset)", "--skip-in-flight"},
	{TCPConnecting, "TCP connections being opened (SYN-SENT)", false, "dump once the connection is established, or has failed", ""},
	{TCPOddState, "TCP sockets in other states", false, "close the socket before dumping", ""},
	{MPTCPConnections, "Multipath TCP connections", false, "end the connection before dumping, or run the program without Multipath TCP (a Go program: GODEBUG=multipathtcp=0)", ""},
	{UDPSockets, "UDP sockets gockpt cannot read", false, "close the socket before dumping", ""},
	{OtherSockets, "packet and raw sockets", false, "close the socket before dumping", ""},
	{NetlinkQueues, "messages queued to netlink sockets", false, "let the task read its netlink socket before dumping (the kernel's messages cannot be sent again)", ""},
	{Terminals, "terminals", false, "start the tree with setsid and its stdio away from the terminal (</dev/null >log 2>&1)", "--shell-job"},
	{Leases, "file leases", false, "release the lease (fcntl F_SETLEASE, F_UNLCK) before dumping", "--file-locks"},
	{SigioOwner, "SIGIO owners outside the tree", false, "point F_SETOWN at a task of the tree, or clear it (F_SETOWN 0), before dumping", ""},
	{EpollClosedTargets, "epoll sets watching files the task closed", false, "keep an fd on each watched file open in the task holding the epoll set, or remove the file from the set (epoll_ctl EPOLL_CTL_DEL) before closing it", ""},
	{SharedFdTables, "fd tables shared other than by a parent and its CLONE_FILES children", false, "let each task share its fd table with its parent only (clone CLONE_FILES from the task whose table it is), or unshare it (unshare CLONE_FILES) before dumping", ""},
	{SharedAnonNamed, "named shared anonymous memory ([anon_shmem:NAME])", false, "leave the area unnamed (no PR_SET_VMA_ANON_NAME), or map a file (for example in /dev/shm) with MAP_SHARED instead", ""},
	{SysVShm, "System V shared memory", false, "detach the segment (shmdt) before dumping", ""},
	{Hugetlb, "shared hugetlb memory and hugetlbfs files", false, "map the huge pages MAP_PRIVATE|MAP_ANONYMOUS, or use ordinary pages instead of MAP_SHARED|MAP_HUGETLB or hugetlbfs", ""},
	{AsyncIO, "AIO rings with an unknown header", false, "destroy the AIO context (io_destroy) before dumping", ""},
	{DeviceMaps, "device memory mappings", false, "unmap the device before dumping", ""},
	{Uprobes, "uprobes", false, "detach the uprobes (perf or BPF) before dumping", ""},
	{DeletedPaths, "deleted executables", false, "put the executable back where it was before dumping (restore needs it)", ""},
	{SpecialMaps, "sealed, shadow-stack and droppable mappings", false, "run the program without mseal, user shadow stacks or MAP_DROPPABLE", ""},
	{TimerfdCancelTicks, "timerfds set with TFD_TIMER_CANCEL_ON_SET that have unread expirations", false, "read the timerfd before dumping (a clock change and an expiration look the same from outside)", ""},
	{InotifyQueued, "inotify instances with unread events", false, "read the pending events (until read(2) fails with EAGAIN) before dumping", ""},
	{InotifyUnreachable, "inotify watches on files that cannot be opened again by file handle", false, "remove the watch (inotify_rm_watch) before dumping", ""},
	{FanotifyQueued, "fanotify groups with unread events", false, "read the pending events (until read(2) fails with EAGAIN) and answer the permission events among them before dumping", ""},
	{FanotifyUnkeptMarks, "fanotify filesystem and mount-namespace marks, and marks on files or mounts that cannot be opened again", false, "remove the mark (fanotify_mark FAN_MARK_REMOVE) before dumping", ""},
	{Userfaultfd, "userfaultfd", false, "close it before dumping", ""},
	{Pidfd, "pidfds of processes outside the dumped tree", false, "close it before dumping, or dump the tree that contains the process", ""},
	{IOUring, "io_uring", false, "close the ring before dumping", ""},
	{BPF, "BPF maps, programs and links", false, "close them before dumping", ""},
	{OtherAnonInode, "other anonymous-inode files (perf events, KVM, ...)", false, "close it before dumping", ""},
	{SpecialFiles, "namespace files and other special files", false, "close it before dumping", ""},
	{Namespaces, "namespaces other than UTS", false, "run gockpt inside the tree's namespaces (nsenter --target PID --all)", ""},
	{SchedDeadline, "SCHED_DEADLINE scheduling", false, "switch the thread to another policy before dumping (chrt --other -p 0 TID)", ""},
	{CPUAffinity, "CPU affinities other than gockpt's own", false, "run gockpt with the same affinity (taskset), or widen the thread's (taskset -p) before dumping", ""},
	{IOPriority, "I/O priorities other than gockpt's own", false, "run gockpt with the same I/O priority (ionice), or reset the thread's (ionice -c 0 -p TID) before dumping", ""},
	{TimerSlack, "timer slack other than the default 50000 ns", false, "set it back before dumping (prctl(PR_SET_TIMERSLACK, 0) in the thread, or echo 0 > /proc/PID/timerslack_ns)", ""},
	{CoredumpFilter, "core dump filters other than gockpt's own", false, "write gockpt's value back to /proc/PID/coredump_filter before dumping", ""},
	{Autogroup, "autogroup nice values", false, "reset it before dumping (echo 0 > /proc/PID/autogroup)", ""},
	{LSMPending, "pending LSM labels (attr/exec, fscreate, keycreate, sockcreate)", false, "clear the label (write an empty value to it, setexeccon(NULL) and the like) before dumping", ""},
	{MDWE, "memory-deny-write-execute (PR_SET_MDWE)", false, "run the program without PR_SET_MDWE (systemd: MemoryDenyWriteExecute=no)", ""},
	{THPExceptAdvised, "THP disabled except where advised", false, "disable THP completely (prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0)) or not at all before dumping", ""},
	{NUMAPolicy, "NUMA memory policies (set_mempolicy, mbind)", false, "run the program without a memory policy (numactl), or set the default back (MPOL_DEFAULT) before dumping", ""},
	{SyscallUserDispatch, "syscall user dispatch (PR_SET_SYSCALL_USER_DISPATCH)", false, "turn it off in the thread before dumping (prctl(PR_SET_SYSCALL_USER_DISPATCH, PR_SYS_DISPATCH_OFF, 0, 0, 0))", ""},
	{LeaderlessGroups, "process groups whose leader has left the tree", false, "make the task lead a group of its own (setpgid(0, 0)), or keep the group's leader in the tree until the dump is done", ""},
	{CPUIDFaulting, "CPUID faulting (arch_prctl ARCH_SET_CPUID)", false, "turn it off in the thread before dumping (arch_prctl(ARCH_SET_CPUID, 1))", ""},
	{KSMMergeAny, "KSM merge-any (PR_SET_MEMORY_MERGE)", false, "turn it off in the process before dumping (prctl(PR_SET_MEMORY_MERGE, 0, 0, 0, 0)); madvise(MADV_MERGEABLE) areas are dumped", ""},
}

// Lookup returns the object of kind k.
func Lookup(k Kind) Object {
	for _, o := range Objects {
		if o.Kind == k {
			return o
		}
	}
	panic(fmt.Sprintf("support: no kind %q", k))
}

// Advice is what to do about a refused object of kind k.
func Advice(k Kind) string {
	if o, ok := optional[k]; ok {
		return o.Advice
	}
	return Lookup(k).Detail
}

// Refusal is something a tree holds that dump will not checkpoint, named
// the way the user knows it.
type Refusal struct {
	Pid  int
	Comm string
	// Where in the task: "fd 5", "VMA 0x7f00-0x7f10", "" for the task.
	Where string
	// Object names it as ss, lsof or /proc show it:
	// "TCP 127.0.0.1:41234 -> 127.0.0.1:10000", "memfd:cache".
	Object string
	// Detail, when set, says what about it is refused ("a POSIX write
	// lock on bytes 0-99").
	Detail string
	Kind   Kind
	// CRIU overrides the kind's CRIU option ("" keeps it, "-" drops it).
	CRIU string
	// Advice overrides the kind's advice when set.
	Advice string
}

func (r *Refusal) Error() string {
	o := Lookup(r.Kind)
	var b strings.Builder
	fmt.Fprintf(&b, "task %d (%s)", r.Pid, r.Comm)
	if r.Where != "" {
		b.WriteString(" " + r.Where)
	}
	if r.Object != "" {
		b.WriteString(": " + r.Object)
	}
	if r.Detail != "" {
		b.WriteString(": " + r.Detail)
	}
	if opt, ok := optional[r.Kind]; ok {
		// Kept with an option not given: say which.
		b.WriteString(": gockpt dumps " + o.Label + " only with " + opt.Option)
	} else {
		b.WriteString(": gockpt does not dump " + o.Label)
		criu := o.CRIU
		if r.CRIU != "" {
			criu = r.CRIU
		}
		if criu != "" && criu != "-" {
			b.WriteString(" (CRIU: " + criu + ")")
		}
	}
	advice := Advice(r.Kind)
	if r.Advice != "" {
		advice = r.Advice
	}
	b.WriteString("; " + advice)
	return b.String()
}
