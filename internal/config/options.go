// Package config holds gockpt's one options struct and fills it from the
// command line, config files and (later) RPC requests.
//
// Every option is a pflag flag registered on a command. Config files name the
// same flags without the leading dashes, so an option means the same thing
// wherever it comes from. Precedence, lowest first: /etc/gockpt/default.conf,
// $HOME/.gockpt/default.conf, then GOCKPT_CONFIG_FILE or --config FILE, then
// the command line.
package config

import "github.com/spf13/pflag"

// Options is everything a gockpt run can be told. Commands register only the
// flags that mean something to them; the rest keep their zero values.
type Options struct {
	// Global options, CRIU spelling.
	ImagesDir       string
	WorkDir         string
	LogFile         string
	Verbosity       int
	ConfigFile      string
	NoDefaultConfig bool

	// image command
	Input  string
	Output string
	Pretty bool

	// check command
	CheckAll     bool
	CheckJSON    bool
	CheckFeature string

	// dump
	Pid          int
	LeaveRunning bool
	LeaveStopped bool
	Timeout      int // seconds; 0 means no limit
	GhostLimit   int64
	DisplayStats bool
	// ExtUnixSk: dgram unix sockets whose peer is outside the tree are
	// kept and reconnected by name (dump and restore, CRIU's -x).
	ExtUnixSk bool
	// ShellJob: the tree is a job of a shell, in a session led outside it
	// on the shell's terminal; restore puts it on its own terminal (-j).
	ShellJob bool
	// FileLocks (dump and restore, CRIU's --file-locks) keeps file locks.
	FileLocks bool
	// TCPEstablished (dump and restore, CRIU's --tcp-established) keeps
	// established TCP connections; TCPClose (--tcp-close) has restore
	// make them closed; SkipInFlight (dump, --skip-in-flight) leaves out
	// connections not accepted yet; NetworkLock (--network-lock) is
	// nftables or skip.
	TCPEstablished, TCPClose, SkipInFlight bool
	NetworkLock                            string
	// pre-dump and incremental dump
	TrackMem        bool
	PrevImagesDir   string
	TrackMemBackend string

	// Page server (CRIU's spelling): dump and pre-dump with PageServer
	// send pages to Address:Port; the page-server command listens there.
	PageServer bool
	Address    string
	Port       int
	Daemon     bool
	// TLS on page-server connections: --tls, --tls-cacert, --tls-cacrl,
	// --tls-cert, --tls-key, --tls-no-cn-verify.
	TLS                                  bool
	TLSCACert, TLSCACRL, TLSCert, TLSKey string
	TLSNoCNVerify                        bool

	// LazyPages: restore leaves lazy pages to the lazy-pages daemon
	// (post-copy); the lazy-pages command is that daemon.
	LazyPages bool

	// restore
	// InheritFds are --inherit-fd fd[N]:KEY (CRIU's spelling).
	InheritFds      []string
	RestoreDetached bool
	PidFile         string
	UseNsLastPid    bool
}

// AddGlobalFlags registers the options every command understands.
func (o *Options) AddGlobalFlags(fs *pflag.FlagSet) {
	fs.StringVarP(&o.ImagesDir, "images-dir", "D", ".", "directory for image files")
	fs.StringVarP(&o.WorkDir, "work-dir", "W", "", "directory for logs and other work files (default: the images directory)")
	fs.StringVarP(&o.LogFile, "log-file", "o", "", "log file name, relative to the work directory (default: the command's name .log)")
	AddVerbosityFlag(fs, &o.Verbosity)
	fs.StringVar(&o.ConfigFile, "config", "", "read options from this config file after the default ones")
	fs.BoolVar(&o.NoDefaultConfig, "no-default-config", false, "do not read /etc/gockpt/default.conf and $HOME/.gockpt/default.conf")
}
