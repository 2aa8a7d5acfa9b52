package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/gockpt/gockpt/internal/config"
	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/log"
	"github.com/gockpt/gockpt/internal/pageserver"
)

func init() { subcommands = append(subcommands, newPageServerCmd) }

// psListenFdEnv hands the listening socket to the daemon (--daemon).
const psListenFdEnv = "GOCKPT_PAGE_SERVER_FD"

func newPageServerCmd(opts *config.Options) *cobra.Command {
	var lazy bool
	cmd := &cobra.Command{
		Use:   "page-server -D DIR --port N [--address A] [--lazy-pages]",
		Short: "Receive the pages of a dump over the network, or serve lazy pages to a restore",
		Long: `Listen on ADDRESS:PORT for one dump or pre-dump run with --page-server and
write the pages it sends into the images directory, as pagemap and pages
images (CRIU's page server; CRIU 4.2 and gockpt talk to each other either way).
The images appear only when the sender ends its session cleanly: a sender that
fails or hangs up leaves the directory as it was.

  dest$ gockpt page-server -D /imgs --port 27000
  src$  gockpt dump -t PID -D /imgs --page-server --address dest --port 27000

A gockpt sender with --compress (dump, pre-dump, lazy-pages) gets its session
compressed with zstd; CRIU's senders never ask, and CRIU's page server refuses
it: --compress is for gockpt on both sides.

With --prev-images-dir the directory's parent link names the previous
iteration, so that an incremental dump may leave unchanged pages there.
--port 0 picks a free port; the address is printed when the server listens.

With --lazy-pages it serves instead the lazy pages of the images in DIR to the
lazy-pages daemon of a post-copy restore, for one session:

  src$  gockpt page-server --lazy-pages -D /imgs --port 27000
  dest$ criu lazy-pages -D /imgs --page-server --address src --port 27000 &
  dest$ criu restore -D /imgs --lazy-pages

It exits 0 once the daemon closes its session having had every page it asked
for. A request for pages DIR holds no lazy data for is answered with none and
ends the session (the daemon fails the restore), and the server exits 1; so it
does when the daemon hangs up without closing the session.`,
		Args:        cobra.NoArgs,
		Annotations: map[string]string{logNameAnnotation: "page-server.log", createsImagesAnnotation: "yes"},
		PreRunE: func(cmd *cobra.Command, args []string) error {
			if opts.Port < 0 || opts.Port > 65535 {
				return usagef("--port %d is not a TCP port (0-65535)", opts.Port)
			}
			if lazy && opts.PrevImagesDir != "" {
				return usagef("--prev-images-dir is for receiving pages: --lazy-pages serves the images of -D (and their parents) as they are")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if lazy {
				return runLazyPageServer(cmd, opts)
			}
			return runPageServer(cmd, opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Address, "address", "", "address to listen on (default: every address)")
	f.IntVar(&opts.Port, "port", 0, "TCP port to listen on (0: any free port, printed)")
	f.BoolVarP(&opts.Daemon, "daemon", "d", false, "go to the background once listening")
	f.StringVar(&opts.PidFile, "pidfile", "", "write the page server's PID to this file")
	f.BoolVar(&lazy, "lazy-pages", false, "serve the lazy pages of the images in -D to a post-copy restore's lazy-pages daemon instead of receiving pages")
	f.StringVar(&opts.PrevImagesDir, "prev-images-dir", "", "images of the previous iteration, relative to the images directory: becomes the parent of the images received")
	addTLSFlags(cmd, opts)
	cmd.MarkFlagRequired("port")
	return cmd
}

// addPageServerFlags registers the flags of a dump sending to a page server.
func addPageServerFlags(cmd *cobra.Command, opts *config.Options) {
	f := cmd.Flags()
	f.BoolVar(&opts.PageServer, "page-server", false, "send the pages to a page server (--address, --port) instead of writing pages images")
	f.StringVar(&opts.Address, "address", "", "address of the page server")
	f.IntVar(&opts.Port, "port", 0, "TCP port of the page server")
	addTLSFlags(cmd, opts)
	addCompressFlag(cmd, "compress the pages sent to the page server (zstd; gockpt's extension: the page server must be gockpt page-server, not CRIU's)")
}

// compress is --compress: a gockpt page server session compressed with
// zstd (the pages a dump sends; the pages lazy-pages fetches).
var compress bool

func addCompressFlag(cmd *cobra.Command, usage string) {
	cmd.Flags().BoolVar(&compress, "compress", false, usage)
}

func addTLSFlags(cmd *cobra.Command, opts *config.Options) {
	f := cmd.Flags()
	f.BoolVar(&opts.TLS, "tls", false, "use TLS on the page server connection, both sides showing certificates")
	f.StringVar(&opts.TLSCACert, "tls-cacert", "", "trust only certificates signed by this CA (default "+pageserver.DefaultCACert+", or the system's)")
	f.StringVar(&opts.TLSCACRL, "tls-cacrl", "", "refuse certificates this revocation list names (default "+pageserver.DefaultCACRL+" when present)")
	f.StringVar(&opts.TLSCert, "tls-cert", "", "this side's certificate (default "+pageserver.DefaultCert+")")
	f.StringVar(&opts.TLSKey, "tls-key", "", "this side's private key (default "+pageserver.DefaultKey+")")
	f.BoolVar(&opts.TLSNoCNVerify, "tls-no-cn-verify", false, "do not check that the server's certificate names the address dialed")
}

func tlsOptions(opts *config.Options) pageserver.TLS {
	return pageserver.TLS{Enabled: opts.TLS, CACert: opts.TLSCACert, CACRL: opts.TLSCACRL,
		Cert: opts.TLSCert, Key: opts.TLSKey, NoCNVerify: opts.TLSNoCNVerify}
}

// pageServerTarget checks the page-server flags of a dump and returns
// where to send pages ("" when they stay here) with the TLS configuration.
func pageServerTarget(opts *config.Options) (string, *tls.Config, error) {
	if !opts.PageServer {
		if opts.TLS {
			return "", nil, usagef("--tls secures the page server connection: add --page-server --address A --port N")
		}
		if compress {
			return "", nil, usagef("--compress compresses the page server connection: add --page-server --address A --port N")
		}
		return "", nil, nil
	}
	if opts.Address == "" || opts.Port <= 0 || opts.Port > 65535 {
		return "", nil, usagef("--page-server needs the server's --address and --port")
	}
	tc, err := tlsOptions(opts).ClientConfig(opts.Address)
	if err != nil {
		return "", nil, err
	}
	return pageserver.Addr(opts.Address, opts.Port), tc, nil
}

func runPageServer(cmd *cobra.Command, opts *config.Options) error {
	tc, err := tlsOptions(opts).ServerConfig()
	if err != nil {
		return err
	}
	dir, err := images.CreateDir(opts.ImagesDir)
	if err != nil {
		return err
	}
	if opts.PrevImagesDir != "" {
		if err := dir.LinkParent(opts.PrevImagesDir); err != nil {
			return err
		}
	}
	ln, child, err := listenPageServer(cmd, opts)
	if err != nil || ln == nil {
		return err // nil: gone to the background (--daemon)
	}
	defer ln.Close()
	log.Infof("page server listening on %s, writing into %s", ln.Addr(), dir.Path())
	got, peer, err := pageserver.ServeOne(ln, dir, tc)
	ln.Close()
	if err != nil {
		return err
	}
	mb := float64(got.Bytes) / (1 << 20)
	summary := fmt.Sprintf("Received %d pages (%.1f MiB) of %d pagemaps from %s in %v (%.0f MiB/s); %d pages left in the parent images, %d lazy",
		got.Pages, mb, got.Targets, peer, got.Took.Round(time.Millisecond), mb/max(got.Took.Seconds(), 1e-6), got.Parent, got.Lazy)
	if got.Compressed&pageserver.CompressSent != 0 {
		summary += fmt.Sprintf("; compressed (zstd): %.1f MiB on the wire", float64(got.Wire)/(1<<20))
	}
	log.Infof("%s", summary)
	if !child {
		fmt.Fprintln(cmd.OutOrStdout(), summary)
	}
	return nil
}

// runLazyPageServer serves the lazy pages of the images directory to one
// lazy-pages daemon session.
func runLazyPageServer(cmd *cobra.Command, opts *config.Options) error {
	tc, err := tlsOptions(opts).ServerConfig()
	if err != nil {
		return err
	}
	dir, err := images.OpenDir(opts.ImagesDir)
	if err != nil {
		return err
	}
	src, err := pageserver.OpenImagesSource(dir)
	if err != nil {
		return err
	}
	defer src.Close()
	ln, child, err := listenPageServer(cmd, opts)
	if err != nil || ln == nil {
		return err // nil: gone to the background (--daemon)
	}
	defer ln.Close()
	log.Infof("page server listening on %s, serving %d lazy pages of tasks %v from %s", ln.Addr(), src.LazyPages(), src.Pids(), dir.Path())
	if src.LazyPages() == 0 {
		log.Warnf("page server: %s holds no lazy pages: the first request will end the session", dir.Path())
	}
	got, peer, err := pageserver.ServeLazyOne(ln, src, tc)
	ln.Close()
	mb := float64(got.Bytes) / (1 << 20)
	summary := fmt.Sprintf("Served %d pages (%.1f MiB) in %d requests to %s in %v (%.0f MiB/s), of %d lazy pages in the images",
		got.Pages, mb, got.Requests, peer, got.Took.Round(time.Millisecond), mb/max(got.Took.Seconds(), 1e-6), src.LazyPages())
	if got.Compressed&pageserver.CompressAnswers != 0 {
		summary += fmt.Sprintf("; compressed (zstd): %.1f MiB on the wire", float64(got.Wire)/(1<<20))
	}
	if err == nil || got.Requests > 0 {
		log.Infof("%s", summary)
		if !child {
			fmt.Fprintln(cmd.OutOrStdout(), summary)
		}
	}
	return err
}

// listenPageServer listens as asked (or takes the socket of the daemon's
// first start: child), writes --pidfile and says where it listens. With
// --daemon it starts the server in the background and returns no listener.
func listenPageServer(cmd *cobra.Command, opts *config.Options) (net.Listener, bool, error) {
	child := os.Getenv(psListenFdEnv) != ""
	ln, err := pageServerListener(opts)
	if err != nil {
		return nil, child, err
	}
	if opts.Daemon {
		defer ln.Close()
		return nil, child, daemonizePageServer(cmd, opts, ln)
	}
	if opts.PidFile != "" && !child {
		if err := writePidFile(opts.PidFile, os.Getpid()); err != nil {
			ln.Close()
			return nil, child, err
		}
	}
	if !child {
		fmt.Fprintf(cmd.OutOrStdout(), "page server listening on %s\n", ln.Addr())
	}
	return ln, child, nil
}

// pageServerListener listens as asked, or takes the socket the parent of a
// daemon listened on.
func pageServerListener(opts *config.Options) (net.Listener, error) {
	if s := os.Getenv(psListenFdEnv); s != "" {
		fd, err := strconv.Atoi(s)
		if err != nil {
			return nil, fmt.Errorf("%s=%q: %w", psListenFdEnv, s, err)
		}
		os.Unsetenv(psListenFdEnv)
		f := os.NewFile(uintptr(fd), "page-server-listener")
		defer f.Close()
		return net.FileListener(f)
	}
	ln, err := net.Listen("tcp", pageserver.Addr(opts.Address, opts.Port))
	if err != nil {
		return nil, fmt.Errorf("page server: %w", err)
	}
	return ln, nil
}

// daemonizePageServer starts the page server again in the background, in
// its own session, on the socket already listening, and returns: whoever
// started it may connect at once.
func daemonizePageServer(cmd *cobra.Command, opts *config.Options, ln net.Listener) error {
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return errors.New("page server: --daemon needs a TCP listener")
	}
	lf, err := tl.File()
	if err != nil {
		return err
	}
	defer lf.Close()
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	var args []string
	for _, a := range os.Args[1:] {
		if a != "--daemon" && a != "-d" {
			args = append(args, a)
		}
	}
	c := exec.Command(exe, args...)
	c.Env = append(os.Environ(), psListenFdEnv+"=3")
	c.ExtraFiles = []*os.File{lf}
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer devnull.Close()
	c.Stdin, c.Stdout, c.Stderr = devnull, devnull, devnull
	if err := c.Start(); err != nil {
		return fmt.Errorf("page server: starting the daemon: %w", err)
	}
	pid := c.Process.Pid
	c.Process.Release()
	if opts.PidFile != "" {
		if err := writePidFile(opts.PidFile, pid); err != nil {
			syscall.Kill(pid, syscall.SIGKILL)
			return err
		}
	}
	fmt.Fprintf(cmd.OutOrStdout(), "page server listening on %s (PID %d)\n", ln.Addr(), pid)
	return nil
}

// writePidFile writes pid to name (--pidfile), as CRIU: the number and a
// newline.
func writePidFile(name string, pid int) error {
	if err := os.WriteFile(name, []byte(strconv.Itoa(pid)+"\n"), 0o600); err != nil {
		return fmt.Errorf("--pidfile: %w", err)
	}
	return nil
}
