package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/config"
	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/lazy"
	"github.com/gockpt/gockpt/internal/log"
	"github.com/gockpt/gockpt/internal/pageserver"
)

func init() { subcommands = append(subcommands, newLazyPagesCmd) }

// lazySocketName is the daemon's socket in the work directory, as CRIU
// names it.
const lazySocketName = "lazy-pages.socket"

// lazySocket is where restore --lazy-pages and the daemon meet: --address
// when given (local pages), else lazy-pages.socket in the work directory.
func lazySocket(opts *config.Options) string {
	if opts.Address != "" && !opts.PageServer {
		return opts.Address
	}
	dir := opts.WorkDir
	if dir == "" {
		dir = opts.ImagesDir
	}
	return filepath.Join(dir, lazySocketName)
}

// Tuning of the daemon (lazy-pages only).
var prefetch, push uint64

func newLazyPagesCmd(opts *config.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lazy-pages -D DIR [--address SOCK] [--page-server --address A --port N]",
		Short: "Serve the lazy pages of a post-copy restore",
		Long: `Post-copy: the restored tree runs before its memory is in place. This daemon
waits for one restore --lazy-pages on its unix socket, takes the userfaultfds
of the restored tasks, answers each page fault with the pages around it from
the images in DIR, pushes the other pages in the background, and exits when
every page is in place, saying how long that took.

  gockpt lazy-pages -D DIR &
  gockpt restore -D DIR --lazy-pages -d

The socket is --address, or lazy-pages.socket in the work directory; give
restore the same. With --page-server the pages come from a page server
(the source host's dump --lazy-pages, or page-server --lazy-pages), and the
socket is lazy-pages.socket in the work directory.

If the pages cannot all be put in place (the page server or the link is
lost), the restored tree is killed and the failure reported: it never runs
on with memory missing, nor waits for it for ever.`,
		Args:        cobra.NoArgs,
		Annotations: map[string]string{logNameAnnotation: "lazy-pages.log"},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runLazyPages(cmd, opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Address, "address", "", "unix socket to wait for restore on (default: lazy-pages.socket in the work directory); with --page-server, the page server's address")
	f.BoolVar(&opts.PageServer, "page-server", false, "fetch the pages from a page server (--address, --port: gockpt page-server --lazy-pages, dump --lazy-pages, or CRIU's) instead of the images")
	f.IntVar(&opts.Port, "port", 0, "TCP port of the page server")
	addTLSFlags(cmd, opts)
	addCompressFlag(cmd, "ask the page server to compress the pages it sends (zstd; gockpt's extension: the page server must be gockpt's page-server --lazy-pages or dump --lazy-pages, not CRIU's)")
	f.Uint64Var(&prefetch, "prefetch", 8, "pages a fault brings in at most, around the page that faulted")
	f.Uint64Var(&push, "push-pages", 256, "pages one background copy moves at most (0: none: pages come only when they fault, for tests and slow links)")
	return cmd
}

func runLazyPages(cmd *cobra.Command, opts *config.Options) error {
	dir, err := images.OpenDir(opts.ImagesDir)
	if err != nil {
		return err
	}
	var src lazy.Source = lazy.NewImagesSource(dir)
	if compress && !opts.PageServer {
		return usagef("--compress asks a page server for compressed pages: add --page-server --address A --port N")
	}
	if opts.PageServer {
		addr, tc, err := pageServerTarget(opts)
		if err != nil {
			return err
		}
		c, err := pageserver.Dial(addr, tc)
		if err != nil {
			return err
		}
		if compress {
			if err := c.Compress(pageserver.CompressAnswers); err != nil {
				return err
			}
		}
		src = lazy.NewRemoteSource(c)
		log.Infof("lazy-pages: pages from the page server at %s", addr)
	}
	sock := lazySocket(opts)
	lfd, err := listenUnix(sock)
	if err != nil {
		return err
	}
	defer os.Remove(sock)
	fmt.Fprintf(cmd.OutOrStdout(), "lazy-pages daemon listening on %s\n", sock)
	log.Infof("lazy-pages daemon listening on %s, pages from %s", sock, dir.Path())
	conn, _, err := unix.Accept4(lfd, unix.SOCK_CLOEXEC)
	unix.Close(lfd)
	if err != nil {
		src.Abort()
		return fmt.Errorf("lazy-pages: %w", err)
	}
	d, err := lazy.NewDaemon(conn, src)
	if err != nil {
		unix.Close(conn)
		src.Abort()
		return err
	}
	defer d.Close()
	standbyDir := ""
	if !opts.PageServer {
		standbyDir = dir.Path()
	}
	if d.Standby, err = lazy.StartStandby(lazyStandbyArgs(standbyDir)); err != nil {
		return err
	}
	defer d.Standby.Done()
	log.Infof("lazy-pages: standby PID %d holds copies of the userfaultfds", d.Standby.Pid())
	d.Prefetch, d.Push = max(prefetch, 1), min(push, 256)
	st, err := d.Run()
	if err != nil {
		if killed := d.KillTree(); len(killed) > 0 {
			sort.Ints(killed)
			return fmt.Errorf("lazy-pages: %w; the restored tree was killed (PIDs %v): its memory cannot be completed", err, killed)
		}
		return fmt.Errorf("lazy-pages: %w", err)
	}
	if err := d.CloseSource(); err != nil {
		return fmt.Errorf("lazy-pages: every page is in place, but ending the session: %w", err)
	}
	med, p99 := st.Latency()
	summary := fmt.Sprintf("Lazy pages: all in place %v after restore connected: %d pages (%.1f MiB) of %d tasks; %d faults answered (median %v, p99 %v), %d pages pushed ahead of faults, %d dropped by the tasks first",
		st.Took.Round(time.Millisecond), st.Pages, float64(st.Pages*4096)/(1<<20), st.Tasks, st.Faults, med.Round(time.Microsecond), p99.Round(time.Microsecond), st.Pushed, st.Dropped)
	log.Infof("%s", summary)
	fmt.Fprintln(cmd.OutOrStdout(), summary)
	return nil
}

// listenUnix listens on the unix socket path, 0600: whoever connects gets
// to hand over userfaultfds.
func listenUnix(path string) (int, error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return -1, fmt.Errorf("lazy-pages: %w", err)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	old := unix.Umask(0o177)
	err = unix.Bind(fd, &unix.SockaddrUnix{Name: path})
	unix.Umask(old)
	if err == nil {
		err = unix.Listen(fd, 1)
	}
	if err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("lazy-pages: listening on %s: %w", path, err)
	}
	return fd, nil
}

// lazyStandbyCmd is the name the daemon starts its standby with.
const lazyStandbyCmd = "lazy-standby"

func init() { subcommands = append(subcommands, newLazyStandbyCmd) }

// newLazyStandbyCmd is the process the lazy-pages daemon starts beside
// itself: should the daemon die with pages not in place, it kills the
// restored tree. Internal, so hidden from help.
func newLazyStandbyCmd(opts *config.Options) *cobra.Command {
	var fromImages string
	cmd := &cobra.Command{
		Use:    lazyStandbyCmd,
		Short:  "Stand by a lazy-pages daemon (started by gockpt lazy-pages itself)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var src lazy.Source
			if fromImages != "" {
				dir, err := images.OpenDir(fromImages)
				if err != nil {
					return err
				}
				src = lazy.NewImagesSource(dir)
				defer src.Close()
			}
			code := lazy.RunStandby(3, src, func(s string) { fmt.Fprintln(cmd.ErrOrStderr(), s) })
			if code != 0 {
				return exitError{code}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&fromImages, "from-images", "", "the images the daemon serves pages from")
	return cmd
}

// lazyStandbyArgs start the standby; dir: the images the daemon serves
// ("" when its pages come from a page server).
func lazyStandbyArgs(dir string) []string {
	exe, err := os.Executable()
	if err != nil {
		exe = "/proc/self/exe"
	}
	args := []string{exe, lazyStandbyCmd, "--no-default-config"}
	if dir != "" {
		abs, err := filepath.Abs(dir)
		if err == nil {
			dir = abs
		}
		args = append(args, "--from-images", dir)
	}
	return args
}
