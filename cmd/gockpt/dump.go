package main

import (
	"crypto/tls"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/gockpt/gockpt/internal/config"
	"github.com/gockpt/gockpt/internal/dump"
	"github.com/gockpt/gockpt/internal/files"
	"github.com/gockpt/gockpt/internal/log"
	"github.com/gockpt/gockpt/internal/pageserver"
)

func init() { subcommands = append(subcommands, newDumpCmd) }

func newDumpCmd(opts *config.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dump -t PID -D DIR",
		Short: "Checkpoint a process tree into image files",
		Long: `Checkpoint the process tree rooted at PID (the task, all its descendants and
every thread) into CRIU-compatible images in the images directory. By default
the tree is killed after a successful dump, as CRIU does; a failed dump leaves
it running as it was.`,
		Args:        cobra.NoArgs,
		Annotations: map[string]string{logNameAnnotation: "dump.log", createsImagesAnnotation: "yes"},
		PreRunE: func(cmd *cobra.Command, args []string) error {
			if opts.LeaveRunning && opts.LeaveStopped {
				return usagef("--leave-running and --leave-stopped exclude each other: choose one")
			}
			if opts.GhostLimit < 0 {
				return usagef("--ghost-limit %d is negative: give the largest deleted file to save, in bytes (0 saves none)", opts.GhostLimit)
			}
			if err := checkDumpValues(opts); err != nil {
				return err
			}
			return checkNetworkLock(opts)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			backend, err := dump.ParseBackend(opts.TrackMemBackend)
			if err != nil {
				return err
			}
			var psAddr, lazyAddr string
			var psTLS, lazyTLS *tls.Config
			if opts.LazyPages {
				if opts.PageServer {
					return usagef("--lazy-pages serves the lazy pages on --address --port itself: drop --page-server")
				}
				if compress {
					return usagef("--compress is asked for by the destination (lazy-pages --page-server --compress): drop it here, the dump compresses what that daemon asks it to")
				}
				if opts.Port < 0 || opts.Port > 65535 {
					return usagef("--port %d is not a TCP port (0-65535)", opts.Port)
				}
				if lazyTLS, err = tlsOptions(opts).ServerConfig(); err != nil {
					return err
				}
				lazyAddr = pageserver.Addr(opts.Address, opts.Port)
			} else if psAddr, psTLS, err = pageServerTarget(opts); err != nil {
				return err
			}
			bar := startProgress(cmd, "Dumping")
			st, err := dump.Run(dump.Options{
				Pid:            opts.Pid,
				ImagesDir:      opts.ImagesDir,
				LeaveRunning:   opts.LeaveRunning,
				LeaveStopped:   opts.LeaveStopped,
				Timeout:        time.Duration(opts.Timeout) * time.Second,
				GhostLimit:     opts.GhostLimit,
				ExtUnixSk:      opts.ExtUnixSk,
				ShellJob:       opts.ShellJob,
				FileLocks:      opts.FileLocks,
				TCPEstablished: opts.TCPEstablished,
				TCPClose:       opts.TCPClose,
				SkipInFlight:   opts.SkipInFlight,
				NetworkLock:    opts.NetworkLock,
				WatchdogArgs:   watchdogArgs(),
				TrackMem:       opts.TrackMem,
				PrevImagesDir:  opts.PrevImagesDir,
				TrackBackend:   backend,
				PageServer:     psAddr,
				PageServerTLS:  psTLS,
				Compress:       compress,
				LazyPages:      opts.LazyPages,
				LazyListen:     lazyAddr,
				LazyTLS:        lazyTLS,
				LazyReady: func(addr string) {
					bar.Finish()
					fmt.Fprintf(cmd.OutOrStdout(), "Images written; serving the lazy pages on %s until the destination has them all\n", addr)
				},
				Progress: bar.Sink(),
			})
			bar.Finish()
			if err != nil {
				return err
			}
			summary := fmt.Sprintf("Dumped %d tasks, %d threads, %d pages written, frozen for %v",
				st.Tasks, st.Threads, st.PagesWritten, st.FrozenTime.Round(time.Microsecond))
			if opts.PrevImagesDir != "" {
				summary += fmt.Sprintf("; %d pages left in the parent images", st.PagesSkippedParent)
			}
			if st.DroppedDatagrams > 0 {
				summary += fmt.Sprintf("; %d UDP datagrams (%d bytes) waiting to be read were dropped", st.DroppedDatagrams, st.DroppedBytes)
			}
			log.Infof("%s", summary)
			fmt.Fprintln(cmd.OutOrStdout(), summary)
			if opts.DisplayStats {
				printDumpStats(cmd, st)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVarP(&opts.Pid, "tree", "t", 0, "PID of the root of the tree to dump")
	f.BoolVarP(&opts.LeaveRunning, "leave-running", "R", false, "let the tree run on after the dump")
	f.BoolVarP(&opts.LeaveStopped, "leave-stopped", "s", false, "leave the tree stopped (SIGSTOP) after the dump")
	f.IntVar(&opts.Timeout, "timeout", 10, "give up, and let the tree run on, if a task does not stop within this many seconds or the tree stays frozen longer (0: no limit on the freeze; stopping still gives up after 10)")
	f.Int64Var(&opts.GhostLimit, "ghost-limit", files.DefaultGhostLimit, "largest deleted-but-open file whose content is saved, in bytes")
	f.BoolVar(&opts.DisplayStats, "display-stats", false, "print the dump statistics (as the stats-dump image holds them)")
	addExtUnixSkFlag(cmd, opts)
	f.BoolVarP(&opts.FileLocks, "file-locks", "l", false, "keep the tree's flock, POSIX and OFD locks (restore needs --file-locks too); without it a tree holding one is refused")
	addTCPFlags(cmd, opts, true)
	f.BoolVar(&opts.SkipInFlight, "skip-in-flight", false, "leave out TCP connections a listener has not accepted yet (their clients see them reset); without it a listener holding one is refused")
	addTrackFlags(cmd, opts)
	addPageServerFlags(cmd, opts)
	cmd.Flags().BoolVar(&opts.LazyPages, "lazy-pages", false, "post-copy: leave the lazy pages out of the images and serve them from the frozen tree on --address --port until the destination's lazy-pages daemon has them all, then kill the tree")
	cmd.MarkFlagRequired("tree")
	return cmd
}

// pidMaxLimit is the kernel's PID_MAX_LIMIT on 64-bit machines: no
// pid_max setting allows a PID as large.
const pidMaxLimit = 1 << 22

// checkDumpValues checks the values dump and pre-dump share.
func checkDumpValues(opts *config.Options) error {
	if opts.Pid <= 0 {
		return usagef("-t/--tree %d is not a process ID: give the PID of the root of the tree", opts.Pid)
	}
	if opts.Pid >= pidMaxLimit {
		return usagef("-t/--tree %d is not a process ID: PIDs are below %d", opts.Pid, pidMaxLimit)
	}
	if opts.Timeout < 0 {
		return usagef("--timeout %d is negative: give seconds, or 0 for no limit", opts.Timeout)
	}
	if _, err := dump.ParseBackend(opts.TrackMemBackend); err != nil {
		return usagef("--track-mem-backend: %v", err)
	}
	return nil
}

// checkNetworkLock checks --network-lock, which dump and restore share.
func checkNetworkLock(opts *config.Options) error {
	if opts.NetworkLock != dump.NetworkLockNftables && opts.NetworkLock != dump.NetworkLockSkip {
		return usagef("--network-lock %q: give nftables or skip", opts.NetworkLock)
	}
	return nil
}

// addTCPFlags registers the options of established TCP connections,
// which dump and restore share.
func addTCPFlags(cmd *cobra.Command, opts *config.Options, dumping bool) {
	f := cmd.Flags()
	if dumping {
		f.BoolVar(&opts.TCPEstablished, "tcp-established", false, "keep established TCP connections, through TCP repair mode (restore needs --tcp-established too); without it a tree holding one is refused")
		f.BoolVar(&opts.TCPClose, "tcp-close", false, "keep established TCP connections without their data, for restore to make them closed")
	} else {
		f.BoolVar(&opts.TCPEstablished, "tcp-established", false, "make the images' established TCP connections again; without it restore refuses images that hold one")
		f.BoolVar(&opts.TCPClose, "tcp-close", false, "make the images' established TCP connections closed: the program finds them ended")
	}
	f.StringVar(&opts.NetworkLock, "network-lock", dump.NetworkLockNftables, "how the packets of established connections are held back while they are dumped and restored: nftables (a table of gockpt's own, no nft binary needed), or skip")
}

// addTrackFlags registers the options of incremental dumps.
func addTrackFlags(cmd *cobra.Command, opts *config.Options) {
	f := cmd.Flags()
	f.BoolVar(&opts.TrackMem, "track-mem", false, "track memory changes with the kernel so the next --prev-images-dir iteration saves only changed pages")
	f.StringVar(&opts.PrevImagesDir, "prev-images-dir", "", "images of the previous iteration (a pre-dump), relative to the images directory; unchanged pages are left there")
	f.StringVar(&opts.TrackMemBackend, "track-mem-backend", "auto", "memory tracker for --track-mem: auto, uffd-wp, soft-dirty or hashes (gockpt check --feature mem_dirty_track shows which work)")
}

func printDumpStats(cmd *cobra.Command, st *dump.Stats) {
	w := cmd.OutOrStdout()
	fmt.Fprintln(w, "Displaying dump stats:")
	fmt.Fprintf(w, "Freezing time: %d us\n", st.FreezingTime.Microseconds())
	fmt.Fprintf(w, "Frozen time: %d us\n", st.FrozenTime.Microseconds())
	fmt.Fprintf(w, "Memory dump time: %d us\n", st.MemdumpTime.Microseconds())
	fmt.Fprintf(w, "Memory write time: %d us\n", st.MemwriteTime.Microseconds())
	fmt.Fprintf(w, "Memory pages scanned: %d (0x%x)\n", st.PagesScanned, st.PagesScanned)
	fmt.Fprintf(w, "Memory pages skipped from parent: %d (0x%x)\n", st.PagesSkippedParent, st.PagesSkippedParent)
	fmt.Fprintf(w, "Memory pages written: %d (0x%x)\n", st.PagesWritten, st.PagesWritten)
	fmt.Fprintf(w, "Lazy memory pages: 0 (0x0)\n")
	if st.DroppedDatagrams > 0 {
		fmt.Fprintf(w, "UDP datagrams dropped: %d (%d bytes)\n", st.DroppedDatagrams, st.DroppedBytes)
	}
}

// addExtUnixSkFlag registers --ext-unix-sk and --shell-job, which dump
// and restore share.
func addExtUnixSkFlag(cmd *cobra.Command, opts *config.Options) {
	cmd.Flags().BoolVarP(&opts.ExtUnixSk, "ext-unix-sk", "x", false,
		"keep dgram unix sockets connected to a socket outside the tree, and connect them to its name again at restore (it must exist then)")
	cmd.Flags().BoolVarP(&opts.ShellJob, "shell-job", "j", false,
		"the tree is a job started from a shell: dump keeps its terminal, and restore puts it in restore's session, on the terminal restore runs on")
}
