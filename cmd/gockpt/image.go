package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gockpt/gockpt/internal/config"
	"github.com/gockpt/gockpt/internal/files"
	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/images/lazyimg"
)

func init() { subcommands = append(subcommands, newImageCmd) }

// newImageCmd is what CRIU calls crit: it converts images to and from JSON
// and describes image directories.
func newImageCmd(opts *config.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Decode, encode and inspect image files (CRIU's crit)",
		Args:  cobra.ArbitraryArgs,
		RunE:  runGroup,
	}
	cmd.AddCommand(newImageDecodeCmd(opts), newImageEncodeCmd(opts), newImageShowCmd(), newImageLsCmd(), newImageExploreCmd(), newImageMakeLazyCmd())
	return cmd
}

// critSpelling makes decode and encode take crit's options: -i/--in and
// -o/--out. -o is --output here, not the global --log-file: the command
// declares its own --log-file (without -o), which hides the global one.
func critSpelling(cmd *cobra.Command, opts *config.Options, inUsage, outUsage string) {
	f := cmd.Flags()
	f.StringVarP(&opts.Input, "input", "i", "", inUsage)
	f.StringVarP(&opts.Output, "output", "o", "", outUsage)
	f.StringVar(&opts.LogFile, "log-file", "", "log file name, relative to the work directory (-o is --output for this command)")
	f.SetNormalizeFunc(func(_ *pflag.FlagSet, name string) pflag.NormalizedName {
		switch name {
		case "in":
			name = "input"
		case "out":
			name = "output"
		}
		return pflag.NormalizedName(name)
	})
	_ = cmd.MarkFlagRequired("input")
}

func newImageDecodeCmd(opts *config.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:          "decode -i FILE [-o JSON] [--pretty]",
		Short:        "Print an image file as JSON",
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := openImage(opts.Input)
			if err != nil {
				return err
			}
			defer r.Close()
			if opts.Output == "" {
				return images.DecodeJSON(r, cmd.OutOrStdout(), opts.Pretty)
			}
			return writeOutput(opts.Output, func(w io.Writer) error { return images.DecodeJSON(r, w, opts.Pretty) })
		},
	}
	critSpelling(cmd, opts, "image file to decode", "write the JSON to this file (0600) instead of standard output")
	cmd.Flags().BoolVar(&opts.Pretty, "pretty", false, "indent, and print addresses in hex and flags by name, as crit --pretty does")
	return cmd
}

func openImage(path string) (*images.Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	r, err := images.NewReader(f, path)
	if err != nil {
		f.Close()
		return nil, err
	}
	return r, nil
}

// writeOutput creates path with mode 0600 (images, and their JSON, hold
// process memory and paths), fills it with fill, and removes it again if
// fill fails: no half-written file is left behind.
func writeOutput(path string, fill func(io.Writer) error) error {
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("output file (-o): %w", err)
	}
	if err := fill(out); err != nil {
		out.Close()
		os.Remove(path)
		return err
	}
	return out.Close()
}

func newImageEncodeCmd(opts *config.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:          "encode -i JSON -o FILE",
		Short:        "Turn the JSON form of an image back into the image file",
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in, err := os.Open(opts.Input)
			if err != nil {
				return err
			}
			defer in.Close()
			return writeOutput(opts.Output, func(w io.Writer) error { return images.EncodeJSON(in, w, opts.Input) })
		},
	}
	critSpelling(cmd, opts, "JSON file, as printed by decode", "image file to write (0600)")
	_ = cmd.MarkFlagRequired("output")
	return cmd
}

func newImageShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:          "show DIR",
		Short:        "Describe the tasks, memory and files of an images directory",
		Args:         cobra.ExactArgs(1),
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := images.OpenDir(args[0])
			if err != nil {
				return err
			}
			s, err := images.Summarize(d, files.Describe)
			if err != nil {
				return err
			}
			return s.WriteText(cmd.OutOrStdout())
		},
	}
}

func newImageLsCmd() *cobra.Command {
	return &cobra.Command{
		Use:          "ls DIR",
		Short:        "List the image files of a directory with their magic and entry count",
		Args:         cobra.ExactArgs(1),
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := images.OpenDir(args[0])
			if err != nil {
				return err
			}
			files, err := images.List(d)
			if err != nil {
				return err
			}
			if len(files) == 0 {
				return fmt.Errorf("%s holds no files: check the path", args[0])
			}
			return images.WriteList(cmd.OutOrStdout(), files)
		},
	}
}

func newImageExploreCmd() *cobra.Command {
	views := strings.Join(images.ExploreViews, "|")
	return &cobra.Command{
		Use:   "x DIR " + views,
		Short: "Show the process tree, fds, memory mappings or dumped pages of an images directory, as crit x does",
		Long: `Show one view of an images directory, laid out as CRIU's crit x shows it:

  ps    the process tree: PID, PGID, SID and command
  fds   each task's open files by fd number, then its cwd and root
  mems  each task's executable and memory mappings, with protection and file
  rss   each task's dumped pages (address / pages) beside their mapping

It reads gockpt's images and CRIU's alike.`,
		ValidArgs:    images.ExploreViews,
		SilenceUsage: true,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 2 {
				return fmt.Errorf("x takes an images directory and a view, got %d argument(s): gockpt image x DIR %s", len(args), views)
			}
			if !slices.Contains(images.ExploreViews, args[1]) {
				return fmt.Errorf("unknown view %q: use one of %s", args[1], strings.Join(images.ExploreViews, ", "))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := images.OpenDir(args[0])
			if err != nil {
				return err
			}
			return images.Explore(d, args[1], cmd.OutOrStdout())
		},
	}
}

func newImageMakeLazyCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "make-lazy SRC DST",
		Short: "Copy a dump's images without the pages a post-copy restore fetches lazily (crit make-lazy)",
		Long: `Make DST, the images of a post-copy restore: a copy of SRC, the images
directory of a dump, without the pages that may be restored lazily.

The dump marks those pages PE_LAZY: private anonymous memory, except the page
each thread's stack pointer is in. In DST their runs say PE_LAZY alone and
their data is left out, to be served by a lazy-pages daemon from SRC while the
restored tree already runs. Everything else is restored at once from DST:
the other pages of the tasks (file-backed private mappings, stack pages, the
vDSO) go into new pages files, shared memory is copied as it is, and runs left
in the parent images of an incremental dump stay there (DST's parent link
leads where SRC's does). Every other file is copied as it is.

DST must not exist, or be empty; it is made 0700, its files 0600, and it
appears only once complete. SRC is left as it is: it still restores on its
own, and DST does not without the lazy-pages daemon.

Post-copy restore:

  gockpt dump -t PID -D SRC
  gockpt image make-lazy SRC DST
  gockpt lazy-pages -D SRC               # serves the lazy pages
  gockpt restore --lazy-pages -D DST     # restores, pages arrive on demand`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 2 {
				return fmt.Errorf("make-lazy takes the images directory of a dump and a new directory, got %d argument(s): gockpt image make-lazy SRC DST", len(args))
			}
			return nil
		},
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := lazyimg.Make(args[0], args[1])
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if err := s.WriteText(out); err != nil {
				return err
			}
			_, err = fmt.Fprintf(out, "post-copy restore: gockpt lazy-pages -D %s, then gockpt restore --lazy-pages -D %s\n", args[0], args[1])
			return err
		},
	}
}
