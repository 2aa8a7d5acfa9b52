package files

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// InheritFd is one --inherit-fd fd[N]:KEY (CRIU's spelling): restore's
// own fd N stands for the file the images name KEY (a pipe or socket a
// container runtime passes, a file path without its leading slash, a
// terminal), and every task that held that file gets a copy of fd N.
type InheritFd struct {
	Fd  int
	Key string
}

// ParseInheritFd reads fd[N]:KEY.
func ParseInheritFd(s string) (InheritFd, error) {
	rest, ok := strings.CutPrefix(s, "fd[")
	num, key, ok2 := strings.Cut(rest, "]:")
	n, err := strconv.Atoi(num)
	if !ok || !ok2 || err != nil || n < 0 || key == "" {
		return InheritFd{}, fmt.Errorf("--inherit-fd %q: want fd[N]:KEY, for example fd[3]:pipe:[12345]", s)
	}
	return InheritFd{Fd: n, Key: key}, nil
}

// Inherit makes restore's fds stand for the files the images name by
// their keys. Every key must name a file of the images, and every fd be
// open: a mistake fails the restore before any task is made.
func (o *Opener) Inherit(list []InheritFd) error {
	if len(list) == 0 {
		return nil
	}
	keys := map[string]bool{}
	for _, e := range o.Files {
		if k := o.kinds.byType[e.GetType()]; k != nil {
			if key := k.External(e); key != "" {
				keys[key] = true
			}
		}
	}
	o.inherited = map[string]*os.File{}
	for _, in := range list {
		if _, err := unix.FcntlInt(uintptr(in.Fd), unix.F_GETFD, 0); err != nil {
			return fmt.Errorf("--inherit-fd fd[%d]:%s: fd %d is not open in gockpt restore", in.Fd, in.Key, in.Fd)
		}
		if !keys[in.Key] {
			known := make([]string, 0, len(keys))
			for k := range keys {
				known = append(known, k)
			}
			sort.Strings(known)
			if len(known) > 8 {
				known = append(known[:8], "...")
			}
			return fmt.Errorf("--inherit-fd fd[%d]:%s: no file of the images is %s (they name %s)", in.Fd, in.Key, in.Key, strings.Join(known, ", "))
		}
		fd, err := unix.FcntlInt(uintptr(in.Fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return err
		}
		o.inherited[in.Key] = os.NewFile(uintptr(fd), in.Key)
	}
	return nil
}

// inheritedFor is the fd --inherit-fd gave for file entry id, or nil.
func (o *Opener) inheritedFor(k Kind, id uint32) *os.File {
	if o.inherited == nil {
		return nil
	}
	return o.inherited[k.External(o.Files[id])]
}
