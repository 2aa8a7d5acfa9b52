package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/gockpt/gockpt/internal/config"
	"github.com/gockpt/gockpt/internal/dump"
	"github.com/gockpt/gockpt/internal/log"
)

func init() { subcommands = append(subcommands, newPreDumpCmd) }

func newPreDumpCmd(opts *config.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pre-dump -t PID -D DIR [--track-mem] [--prev-images-dir DIR]",
		Short: "Save the memory of a running process tree, for a later incremental dump",
		Long: `Save the memory of the process tree rooted at PID and let it run on: the tree
is frozen only while its memory areas are scanned. With --track-mem the kernel
then tracks which pages the tree writes, so the next pre-dump or the final
dump (both with --track-mem --prev-images-dir) saves only those. Without
--track-mem, an iteration with --prev-images-dir compares pages by content.

  gockpt pre-dump -t PID -D pre1 --track-mem
  gockpt pre-dump -t PID -D pre2 --track-mem --prev-images-dir ../pre1
  gockpt dump     -t PID -D final --track-mem --prev-images-dir ../pre2
  gockpt restore  -D final`,
		Args:        cobra.NoArgs,
		Annotations: map[string]string{logNameAnnotation: "pre-dump.log", createsImagesAnnotation: "yes"},
		PreRunE: func(cmd *cobra.Command, args []string) error {
			return checkDumpValues(opts)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			backend, err := dump.ParseBackend(opts.TrackMemBackend)
			if err != nil {
				return err
			}
			psAddr, psTLS, err := pageServerTarget(opts)
			if err != nil {
				return err
			}
			bar := startProgress(cmd, "Pre-dumping")
			st, err := dump.PreDump(dump.Options{
				Pid:           opts.Pid,
				ImagesDir:     opts.ImagesDir,
				Timeout:       time.Duration(opts.Timeout) * time.Second,
				WatchdogArgs:  watchdogArgs(),
				TrackMem:      opts.TrackMem,
				PrevImagesDir: opts.PrevImagesDir,
				TrackBackend:  backend,
				PageServer:    psAddr,
				PageServerTLS: psTLS,
				Compress:      compress,
				KeeperArgs:    keeperArgs(),
				Progress:      bar.Sink(),
			})
			bar.Finish()
			if err != nil {
				return err
			}
			summary := fmt.Sprintf("Pre-dumped %d tasks: %d pages written, %d left in the parent images, frozen for %v",
				st.Tasks, st.PagesWritten, st.PagesSkippedParent, st.FrozenTime.Round(time.Microsecond))
			log.Infof("%s", summary)
			fmt.Fprintln(cmd.OutOrStdout(), summary)
			if opts.DisplayStats {
				printDumpStats(cmd, st)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVarP(&opts.Pid, "tree", "t", 0, "PID of the root of the tree to pre-dump")
	f.IntVar(&opts.Timeout, "timeout", 10, "give up, and let the tree run on, if a task does not stop within this many seconds or the tree stays frozen longer (0: no limit on the freeze; stopping still gives up after 10)")
	f.BoolVar(&opts.DisplayStats, "display-stats", false, "print the statistics (as the stats-dump image holds them)")
	addTrackFlags(cmd, opts)
	addPageServerFlags(cmd, opts)
	cmd.MarkFlagRequired("tree")
	return cmd
}
