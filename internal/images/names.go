package images

import (
	"fmt"
	"strings"
)

// imageNames are the file names CRIU (criu/image-desc.c) and gockpt give
// image files, with the number in a name spelled as a format verb: %d for
// a decimal number, %x for a hexadecimal one. A dump removes files of an
// earlier dump that match one of these and that it did not write itself;
// nothing else in an images directory is ever touched.
var imageNames = []string{
	"inventory.img", "fdinfo-%d.img", "pagemap-%d.img", "pagemap-shmem-%d.img",
	"pagemap-secretmem-%d.img", "reg-files.img", "ext-files.img", "ns-files.img",
	"eventfd.img", "eventpoll.img", "eventpoll-tfd.img", "signalfd.img",
	"inotify.img", "inotify-wd.img", "fanotify.img", "fanotify-mark.img",
	"core-%d.img", "ids-%d.img", "mm-%d.img", "vmas-%d.img", "pipes.img",
	"pipes-data.img", "fifo.img", "fifo-data.img", "pstree.img", "sigacts-%d.img",
	"unixsk.img", "inetsk.img", "packetsk.img", "netlinksk.img", "sk-queues.img",
	"itimers-%d.img", "posix-timers-%d.img", "creds-%d.img", "utsns-%d.img",
	"ipcns-var-%d.img", "ipcns-shm-%d.img", "ipcns-msg-%d.img", "ipcns-sem-%d.img",
	"fs-%d.img", "remap-fpath.img", "ghost-file-%x.img", "memfd.img",
	"memfd-secret.img", "tcp-stream-%x.img", "mountpoints-%d.img", "netdev-%d.img",
	"netns-%d.img", "ifaddr-%d.img", "route-%d.img", "route6-%d.img", "rule-%d.img",
	"iptables-%d.img", "ip6tables-%d.img", "nftables-%d.img", "tmpfs-%d.tar.gz.img",
	"tmpfs-dev-%d.tar.gz.img", "autofs-%d.img", "binfmt-misc-%d.img",
	"binfmt-misc.img", "tty.img", "tty-info.img", "tty-data.img", "filelocks.img",
	"rlimit-%d.img", "pages-%d.img", "pages-shmem-%d.img", "signal-s-%d.img",
	"signal-p-%d.img", "tunfile.img", "cgroup.img", "timerfd.img", "cpuinfo.img",
	"seccomp.img", "userns-%d.img", "netns-ct-%d.img", "netns-exp-%d.img",
	"files.img", "timens-%d.img", "pidns-%d.img", "bpfmap-file.img",
	"bpfmap-data.img", "apparmor.img", "pidfd.img",
	"stats-dump", "irmap-cache",
	// gockpt's own: the memory tracker's state and page hashes of a
	// pre-dump, and the link to the previous iteration.
	TrackFile, "gockpt-hashes-%d", "gockpt-sent-pagemap-%d.img", ParentLink,
}

// TrackFile is what a pre-dump leaves for the next iteration: which
// tracker, which generation, which tasks and areas it armed.
const TrackFile = "gockpt-track.json"

// SentPagemapFile records, in the dumping side's images directory, the
// pagemap of a task whose pages went to a page server: the next iteration
// of an incremental dump learns from it what the parent images hold.
func SentPagemapFile(pid int) string { return fmt.Sprintf("gockpt-sent-pagemap-%d.img", pid) }

// HashFile names a task's page hashes file, which a pre-dump without
// kernel tracking leaves for the next iteration.
func HashFile(pid int) string { return fmt.Sprintf("gockpt-hashes-%d", pid) }

// IsImageName tells whether name is the name of an image file (or of
// gockpt's own files) in an images directory.
func IsImageName(name string) bool {
	for _, p := range imageNames {
		if matchName(p, name) {
			return true
		}
	}
	return false
}

// matchName matches name against a pattern of imageNames: literal text,
// with %d standing for one or more decimal digits and %x for one or more
// hexadecimal ones.
func matchName(pattern, name string) bool {
	for pattern != "" {
		i := strings.IndexByte(pattern, '%')
		if i < 0 {
			return pattern == name
		}
		if !strings.HasPrefix(name, pattern[:i]) || i+1 >= len(pattern) {
			return false
		}
		name = name[i:]
		digit := isDec
		if pattern[i+1] == 'x' {
			digit = isHex
		}
		n := 0
		for n < len(name) && digit(name[n]) {
			n++
		}
		if n == 0 {
			return false
		}
		name, pattern = name[n:], pattern[i+2:]
	}
	return name == ""
}

func isDec(c byte) bool { return c >= '0' && c <= '9' }
func isHex(c byte) bool { return isDec(c) || c >= 'a' && c <= 'f' }
