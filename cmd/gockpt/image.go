package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/gockpt/gockpt/internal/config"
	"github.com/gockpt/gockpt/internal/images"
)

func init() { subcommands = append(subcommands, newImageCmd) }

// newImageCmd is what CRIU calls crit: it converts images to and from JSON
// and describes image directories.
func newImageCmd(opts *config.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Decode, encode and inspect image files (CRIU's crit)",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newImageDecodeCmd(opts), newImageEncodeCmd(opts), newImageShowCmd(), newImageLsCmd())
	return cmd
}

func newImageDecodeCmd(opts *config.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:          "decode -i FILE [--pretty]",
		Short:        "Print an image file as JSON",
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := openImage(opts.Input)
			if err != nil {
				return err
			}
			defer r.Close()
			return images.DecodeJSON(r, cmd.OutOrStdout(), opts.Pretty)
		},
	}
	cmd.Flags().StringVarP(&opts.Input, "input", "i", "", "image file to decode")
	cmd.Flags().BoolVar(&opts.Pretty, "pretty", false, "indent, and print addresses in hex and flags by name, as crit --pretty does")
	_ = cmd.MarkFlagRequired("input")
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

func newImageEncodeCmd(opts *config.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:          "encode -i JSON --output FILE",
		Short:        "Turn the JSON form of an image back into the image file",
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in, err := os.Open(opts.Input)
			if err != nil {
				return err
			}
			defer in.Close()
			// Images hold process memory: 0600, like the dump wrote them.
			out, err := os.OpenFile(opts.Output, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
			if err != nil {
				return err
			}
			if err := images.EncodeJSON(in, out, opts.Input); err != nil {
				out.Close()
				os.Remove(opts.Output)
				return err
			}
			return out.Close()
		},
	}
	cmd.Flags().StringVarP(&opts.Input, "input", "i", "", "JSON file, as printed by decode")
	cmd.Flags().StringVar(&opts.Output, "output", "", "image file to write")
	_ = cmd.MarkFlagRequired("input")
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
			s, err := images.Summarize(d)
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
