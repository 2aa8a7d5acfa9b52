package dump

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/gockpt/gockpt/internal/images"
	pb "github.com/gockpt/gockpt/proto"
)

// TestFileLocksKept: with --file-locks, dump keeps a task's flock, POSIX
// and OFD locks in filelocks.img as CRIU spells them (kind, type, the
// holder and its fd, start and length, 0 for "to the end"), and lets the
// tree run on with its locks.
func TestFileLocksKept(t *testing.T) {
	for _, c := range []struct {
		kind string
		want *pb.FileLockEntry
	}{
		{"flock", &pb.FileLockEntry{Flag: proto.Uint32(2), Type: proto.Uint32(1), Fd: proto.Int32(3), Start: proto.Int64(0), Len: proto.Int64(0)}},
		{"posix-lock", &pb.FileLockEntry{Flag: proto.Uint32(1), Type: proto.Uint32(1), Fd: proto.Int32(3), Start: proto.Int64(2), Len: proto.Int64(4)}},
		{"ofd-lock", &pb.FileLockEntry{Flag: proto.Uint32(4), Type: proto.Uint32(0), Fd: proto.Int32(3), Start: proto.Int64(0), Len: proto.Int64(0)}},
	} {
		t.Run(c.kind, func(t *testing.T) {
			h := startHolder(t, c.kind)
			img := filepath.Join(t.TempDir(), "img")
			if _, err := Run(Options{Pid: h.Pid, ImagesDir: img, LeaveRunning: true, FileLocks: true}); err != nil {
				t.Fatal(err)
			}
			c.want.Pid = proto.Int32(int32(h.Pid))
			got := readLocks(t, img)
			if len(got) != 1 || !proto.Equal(got[0], c.want) {
				t.Fatalf("filelocks.img holds %v, want %v", got, c.want)
			}
			if !lockHeld(h.Pid) {
				t.Errorf("task %d lost its lock in a dump --leave-running", h.Pid)
			}
		})
	}
}

// TestLeaseRefusedWithFileLocks: --file-locks keeps locks, not leases:
// the refusal says so and does not send the user to --file-locks again.
func TestLeaseRefusedWithFileLocks(t *testing.T) {
	h := startHolder(t, "lease")
	img := filepath.Join(t.TempDir(), "img")
	_, err := Run(Options{Pid: h.Pid, ImagesDir: img, LeaveRunning: true, FileLocks: true})
	want := fmt.Sprintf("task %d (%s) fd 3: %s/locked: a read lease: gockpt does not dump file leases; release the lease (fcntl F_SETLEASE, F_UNLCK) before dumping (--file-locks keeps locks, not leases)", h.Pid, comm(h.Pid), h.dir)
	if err == nil || err.Error() != want {
		t.Fatalf("error\n %v\nwant\n %s", err, want)
	}
}

func readLocks(t *testing.T, img string) []*pb.FileLockEntry {
	t.Helper()
	d, err := images.OpenDir(img)
	if err != nil {
		t.Fatal(err)
	}
	r, err := d.Open(images.FileLocksFile)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []*pb.FileLockEntry
	for {
		e := &pb.FileLockEntry{}
		if _, err := r.ReadEntry(e); errors.Is(err, io.EOF) {
			return out
		} else if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
}

// lockHeld tells whether /proc/PID/fdinfo/3 of task pid still shows a lock.
func lockHeld(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/3", pid))
	return err == nil && strings.Contains(string(b), "lock:")
}
