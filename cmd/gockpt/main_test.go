package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestMain lets the test binary stand in for gockpt where gockpt runs
// itself: dump starts its parasite watchdog, and pre-dump its memory
// keeper, as os.Executable(); with GOCKPT_TEST_AS_GOCKPT=1 it is gockpt
// (a test's shell runs it).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && (os.Args[1] == watchdogCmd || os.Args[1] == keeperCmd || os.Args[1] == lazyStandbyCmd || os.Getenv("GOCKPT_TEST_AS_GOCKPT") == "1") {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// TestUsageErrors: a command line gockpt cannot act on is refused before
// anything runs: the error, the flags the user probably meant, a pointer
// to the command's help, and no images directory, work directory or log.
func TestUsageErrors(t *testing.T) {
	tmp := t.TempDir()
	imgs := filepath.Join(tmp, "imgs")
	work := filepath.Join(tmp, "work")
	help := func(cmd string) string { return "Run 'gockpt " + cmd + " --help' for usage.\n" }
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"dump", "-D", imgs}, "Error: required flag(s) \"tree\" not set\n" + help("dump")},
		{[]string{"dump", "-D", imgs, "-W", work}, "Error: required flag(s) \"tree\" not set\n" + help("dump")},
		{[]string{"pre-dump", "-D", imgs, "--track-mem"}, "Error: required flag(s) \"tree\" not set\n" + help("pre-dump")},
		{[]string{"dump", "-t", "1", "-D", imgs, "--leave-runing"},
			"Error: unknown flag: --leave-runing\n\nDid you mean this?\n\t--leave-running\n\n" + help("dump")},
		{[]string{"dump", "-t", "1", "-D", imgs, "--leave"},
			"Error: unknown flag: --leave\n\nDid you mean this?\n\t--leave-running\n\t--leave-stopped\n\n" + help("dump")},
		{[]string{"dump", "--t", "1", "-D", imgs}, "Error: unknown flag: --t\n\nDid you mean this?\n\t-t\n\n" + help("dump")},
		{[]string{"dump", "-t", "1", "-D", imgs, "--frobnicate"}, "Error: unknown flag: --frobnicate\n" + help("dump")},
		{[]string{"dump", "-t", "1", "-D", imgs, "-y"}, "Error: unknown shorthand flag: 'y' in -y\n" + help("dump")},
		{[]string{"restore", "-D", imgs, "--pidfil", "p"}, "Error: unknown flag: --pidfil\n\nDid you mean this?\n\t--pidfile\n\n" + help("restore")},
		{[]string{"check", "--al"}, "Error: unknown flag: --al\n\nDid you mean this?\n\t--all\n\n" + help("check")},
		{[]string{"dump", "-t", "abc", "-D", imgs}, "Error: invalid value \"abc\" for -t/--tree: want a whole number\n" + help("dump")},
		{[]string{"dump", "-t", "1", "-D", imgs, "--leave-running=maybe"}, "Error: invalid value \"maybe\" for -R/--leave-running: want true or false\n" + help("dump")},
		{[]string{"dump", "-t", "99999999999999999999", "-D", imgs}, "Error: invalid value \"99999999999999999999\" for -t/--tree: the number is out of range\n" + help("dump")},
		{[]string{"dump", "-t", "99999999", "-D", imgs}, "Error: -t/--tree 99999999 is not a process ID: PIDs are below 4194304\n" + help("dump")},
		{[]string{"dump", "-D", imgs, "-t"}, "Error: flag needs an argument: 't' in -t\n" + help("dump")},
		{[]string{"dump", "-t", "0", "-D", imgs}, "Error: -t/--tree 0 is not a process ID: give the PID of the root of the tree\n" + help("dump")},
		{[]string{"pre-dump", "-t", "-3", "-D", imgs}, "Error: -t/--tree -3 is not a process ID: give the PID of the root of the tree\n" + help("pre-dump")},
		{[]string{"dump", "-t", "1", "-D", imgs, "-R", "-s"}, "Error: --leave-running and --leave-stopped exclude each other: choose one\n" + help("dump")},
		{[]string{"dump", "-t", "1", "-D", imgs, "--timeout", "-1"}, "Error: --timeout -1 is negative: give seconds, or 0 for no limit\n" + help("dump")},
		{[]string{"dump", "-t", "1", "-D", imgs, "--ghost-limit", "-1"}, "Error: --ghost-limit -1 is negative: give the largest deleted file to save, in bytes (0 saves none)\n" + help("dump")},
		{[]string{"dump", "-t", "1", "-D", imgs, "--track-mem-backend", "dirty"},
			"Error: --track-mem-backend: unknown memory tracker \"dirty\": use auto, uffd-wp, soft-dirty or hashes\n" + help("dump")},
		{[]string{"dump", "-t", "1", "-D", imgs, "--network-lock", "iptables"}, "Error: --network-lock \"iptables\": give nftables or skip\n" + help("dump")},
		{[]string{"restore", "-D", imgs, "--network-lock", ""}, "Error: --network-lock \"\": give nftables or skip\n" + help("restore")},
		{[]string{"dump", "-t", "1", "-D", imgs, "extra"}, "Error: unknown command \"extra\" for \"gockpt dump\"\n" + help("dump")},
		{[]string{"dumpp", "-t", "1"}, "Error: unknown command \"dumpp\" for \"gockpt\"\n\nDid you mean this?\n\tdump\n\n" + "Run 'gockpt --help' for usage.\n"},
		{[]string{"image", "decode", "-D", imgs}, "Error: required flag(s) \"input\" not set\n" + help("image decode")},
	} {
		var stdout, stderr bytes.Buffer
		code := run(append([]string{"--no-default-config"}, c.args...), &stdout, &stderr)
		if code != 1 || stderr.String() != c.want || stdout.Len() != 0 {
			t.Errorf("%q: status %d, stdout %q, stderr\n%q\nwant status 1 and\n%q", c.args, code, stdout.String(), stderr.String(), c.want)
		}
		for _, d := range []string{imgs, work} {
			if _, err := os.Lstat(d); err == nil {
				t.Errorf("%q created %s", c.args, d)
				os.RemoveAll(d)
			}
		}
		if _, err := os.Lstat("dump.log"); err == nil {
			t.Errorf("%q created dump.log in the current directory", c.args)
		}
	}
}
