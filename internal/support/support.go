// Package support is the one list of what gockpt checkpoints and what it
// refuses, by kind of object a process tree can hold. Dump's refusals take
// their advice from here and `gockpt check` prints the list, so the two
// never disagree.
package support

import "fmt"

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
	UTSNamespace   Kind = "uts-namespaces"

	UnixSockets    Kind = "unix-sockets"
	TCPSockets     Kind = "tcp-sockets"
	UDPSockets     Kind = "udp-sockets"
	OtherSockets   Kind = "other-sockets"
	Terminals      Kind = "terminals"
	FileLocks      Kind = "file-locks"
	Leases         Kind = "file-leases"
	SharedAnon     Kind = "shared-anonymous-memory"
	SysVShm        Kind = "sysv-shared-memory"
	Memfd          Kind = "memfd"
	Signalfd       Kind = "signalfd"
	Timerfd        Kind = "timerfd"
	Inotify        Kind = "inotify"
	Fanotify       Kind = "fanotify"
	Userfaultfd    Kind = "userfaultfd"
	Pidfd          Kind = "pidfd"
	IOUring        Kind = "io_uring"
	BPF            Kind = "bpf"
	OtherAnonInode Kind = "other-anon-inodes"
	SpecialFiles   Kind = "special-files"
	Namespaces     Kind = "other-namespaces"
	AsyncIO        Kind = "aio"
	Hugetlb        Kind = "hugetlb"
)

// Object is one kind of object and what gockpt does with it.
type Object struct {
	Kind Kind `json:"kind"`
	// Label is how people call it, as `gockpt check` prints it.
	Label string `json:"label"`
	// Dumped: kept exactly by dump and restore. Otherwise dump refuses a
	// tree that holds one, before touching it.
	Dumped bool `json:"dumped"`
	// Detail says what is kept (when dumped) or what to do instead (when
	// refused): the change to make in the tree before dumping.
	Detail string `json:"detail"`
}

// Objects lists every kind, dumped ones first.
var Objects = []Object{
	{Tasks, "processes and threads", true, "PIDs, sessions, groups, zombies, registers with xsave, signals, timers, rlimits, credentials, seccomp, SELinux labels"},
	{PrivateMemory, "private memory", true, "anonymous, heap, stack, private file mappings, incremental with pre-dump"},
	{SharedFileMaps, "shared file mappings", true, "the mapping; the data stays in the file"},
	{RegularFiles, "regular files and directories", true, "path, position, flags, owner for SIGIO"},
	{DeletedFiles, "deleted open files", true, "content saved up to --ghost-limit"},
	{Pipes, "pipes", true, "both ends, sharing, bytes in flight"},
	{FIFOs, "FIFOs", true, "path, bytes in flight"},
	{CharDevices, "character devices", true, "reopened by path (terminals excepted)"},
	{Eventfd, "eventfd", true, "counter and flags"},
	{Epoll, "epoll", true, "watched fds and events"},
	{UTSNamespace, "UTS namespaces", true, "host and domain name"},

	{UnixSockets, "unix sockets", false, "close the socket before dumping, or dump a process that has none"},
	{TCPSockets, "TCP sockets", false, "close the socket before dumping (stop the server or drop the connection)"},
	{UDPSockets, "UDP sockets", false, "close the socket before dumping"},
	{OtherSockets, "netlink, packet and other sockets", false, "close the socket before dumping"},
	{Terminals, "terminals", false, "start the tree with setsid and its stdio away from the terminal (</dev/null >log 2>&1)"},
	{FileLocks, "file locks (flock, POSIX, OFD)", false, "release the lock before dumping"},
	{Leases, "file leases", false, "release the lease (F_SETLEASE F_UNLCK) before dumping"},
	{SharedAnon, "shared anonymous memory", false, "use a shared file mapping (a file in /dev/shm) instead of MAP_SHARED|MAP_ANONYMOUS"},
	{SysVShm, "System V shared memory", false, "detach it (shmdt) before dumping"},
	{Memfd, "memfd", false, "close the memfd and unmap it before dumping"},
	{Signalfd, "signalfd", false, "close it before dumping"},
	{Timerfd, "timerfd", false, "close it before dumping"},
	{Inotify, "inotify", false, "close it before dumping"},
	{Fanotify, "fanotify", false, "close it before dumping"},
	{Userfaultfd, "userfaultfd", false, "close it before dumping"},
	{Pidfd, "pidfd", false, "close it before dumping"},
	{IOUring, "io_uring", false, "close the ring before dumping"},
	{BPF, "BPF maps and programs", false, "close them before dumping"},
	{OtherAnonInode, "other anonymous-inode fds", false, "close it before dumping"},
	{SpecialFiles, "sockets files, /proc namespace files and other special fds", false, "close it before dumping"},
	{Namespaces, "PID, network, mount, IPC, user, time and cgroup namespaces other than gockpt's", false, "run gockpt inside the tree's namespaces (nsenter --target PID --all)"},
	{AsyncIO, "AIO rings (io_setup)", false, "destroy the AIO context (io_destroy) before dumping"},
	{Hugetlb, "hugetlb mappings", false, "use ordinary pages instead of MAP_HUGETLB or hugetlbfs"},
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
func Advice(k Kind) string { return Lookup(k).Detail }
