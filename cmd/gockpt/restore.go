package main

import (
	"fmt"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/gockpt/gockpt/internal/config"
	"github.com/gockpt/gockpt/internal/files"
	"github.com/gockpt/gockpt/internal/log"
	"github.com/gockpt/gockpt/internal/restore"
)

func init() { subcommands = append(subcommands, newRestoreCmd) }

func newRestoreCmd(opts *config.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "restore -D DIR",
		Short: "Restore a process tree from image files",
		Long: `Restore the process tree checkpointed in the images directory, with the same
PIDs, memory, registers, files and credentials. Without -d, gockpt waits for
the restored root task and exits with its exit status, as CRIU does. A failed
restore leaves nothing running and the images unchanged.`,
		Args:        cobra.NoArgs,
		Annotations: map[string]string{logNameAnnotation: "restore.log"},
		PreRunE: func(cmd *cobra.Command, args []string) error {
			for _, s := range opts.InheritFds {
				if _, err := files.ParseInheritFd(s); err != nil {
					return usagef("%v", err)
				}
			}
			return checkNetworkLock(opts)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			var inherit []files.InheritFd
			for _, s := range opts.InheritFds {
				in, _ := files.ParseInheritFd(s)
				inherit = append(inherit, in)
			}
			bar := startProgress(cmd, "Restoring")
			res, err := restore.Run(restore.Options{
				ImagesDir:      opts.ImagesDir,
				LeaveStopped:   opts.LeaveStopped,
				PidFile:        opts.PidFile,
				UseNsLastPid:   opts.UseNsLastPid,
				ExtUnixSk:      opts.ExtUnixSk,
				ShellJob:       opts.ShellJob,
				InheritFds:     inherit,
				FileLocks:      opts.FileLocks,
				TCPEstablished: opts.TCPEstablished,
				TCPClose:       opts.TCPClose,
				NetworkLock:    opts.NetworkLock,
				LazyPages:      opts.LazyPages,
				LazySocket:     lazySocket(opts),
				Progress:       bar.Sink(),
			})
			bar.Finish()
			if err != nil {
				return err
			}
			log.Infof("restored %d tasks, %d threads, %d pages in %v; root PID %d",
				res.Stats.Tasks, res.Stats.Threads, res.Stats.PagesRestored, res.Stats.RestoreTime, res.RootPid)
			if opts.DisplayStats {
				w := cmd.OutOrStdout()
				fmt.Fprintln(w, "Displaying restore stats:")
				fmt.Fprintf(w, "Pages restored: %d (0x%x)\n", res.Stats.PagesRestored, res.Stats.PagesRestored)
				fmt.Fprintf(w, "Forking time: %d us\n", res.Stats.ForkingTime.Microseconds())
				fmt.Fprintf(w, "Restore time: %d us\n", res.Stats.RestoreTime.Microseconds())
			}
			if opts.RestoreDetached {
				return nil
			}
			return waitRoot(res.RootPid)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&opts.RestoreDetached, "restore-detached", "d", false, "do not wait for the restored root task; leave it running")
	f.StringVar(&opts.PidFile, "pidfile", "", "write the restored root's PID to this file")
	f.BoolVarP(&opts.LeaveStopped, "leave-stopped", "s", false, "leave the restored tree stopped (SIGSTOP)")
	f.BoolVar(&opts.UseNsLastPid, "use-ns-last-pid", false, "place PIDs through /proc/sys/kernel/ns_last_pid instead of clone3 set_tid")
	f.BoolVar(&opts.DisplayStats, "display-stats", false, "print the restore statistics")
	f.BoolVar(&opts.LazyPages, "lazy-pages", false, "post-copy: leave the lazy pages to the lazy-pages daemon (gockpt lazy-pages), which puts them in place as the tree runs")
	f.StringVar(&opts.Address, "address", "", "with --lazy-pages: the lazy-pages daemon's unix socket (default: lazy-pages.socket in the work directory)")
	addExtUnixSkFlag(cmd, opts)
	f.StringArrayVar(&opts.InheritFds, "inherit-fd", nil, "fd[N]:KEY: restore's fd N stands for the file the images name KEY (pipe:[ID], socket:[INO], a path without its leading /, tty[RDEV:DEV]); repeatable")
	f.BoolVarP(&opts.FileLocks, "file-locks", "l", false, "take the file locks of the images (filelocks.img) again; without it restore refuses images that hold locks")
	addTCPFlags(cmd, opts, false)
	return cmd
}

// waitRoot waits for the restored root (our child) and turns how it ended
// into gockpt's exit status.
func waitRoot(pid int) error {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("wait for restored task %d: %w", pid, err)
		}
		break
	}
	switch {
	case ws.Exited():
		if ws.ExitStatus() == 0 {
			return nil
		}
		return exitError{ws.ExitStatus()}
	case ws.Signaled():
		return exitError{128 + int(ws.Signal())}
	}
	return nil
}
