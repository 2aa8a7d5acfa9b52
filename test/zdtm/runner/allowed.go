package main

import (
	"fmt"
	"strings"
)

// Allowance is one difference between the tree before a checkpoint and after
// a restore that is not a failure, with the reason. Field names the field as
// the runner's messages and test/zdtm/README.md name it.
type Allowance struct {
	Field string
	Why   string
}

// Allowances is the whole list of what restore may change in what the runner
// compares; everything else the runner looks at must come back exactly.
// test/zdtm/README.md repeats it word for word (TestAllowancesDocumented).
// Comparisons driven by data (VmFlags mnemonics, State, fdinfo keys) look
// their entry up here by its Field, so removing it compares the field again;
// the others name their entry in a comment where they apply it.
var Allowances = []Allowance{
	{"root ppid", "the restored root is a child of the runner (a child subreaper) after `restore -d`, not of the launcher that started it"},
	{"vDSO address", "`[vvar]`, `[vvar_vclock]` and `[vdso]` belong to the running kernel; restore may place them elsewhere as one block (CRIU moves them the same way), so they are compared by size, flags and layout relative to each other"},
	{"anonymous pgoff", "an anonymous area's page offset follows the address it was first mapped (or mremap'd) at, which restore does not reproduce; it is not visible to the process"},
	{"adjacent areas merged", "the kernel merges or keeps apart adjacent areas with the same protection, flags and file (it depends on their history, e.g. anon_vma); areas are merged before they are compared"},
	{"deleted file inode", "a file deleted while open or mapped comes back as a new inode (restore recreates it from the images); its path, contents, offsets and flags are compared"},
	{"pipe and socket inodes", "pipes and sockets are new objects after restore; which fds share one is compared (pipe#1, pipe#2 ...), not the inode number, and they have no file position"},
	{"VmFlags ac", "VM_ACCOUNT says the area was charged to the commit limit: mprotect sets it when a private area becomes writable and never clears it, and restore maps areas writable to fill them before it sets their protection (as CRIU does), so an area may gain it (a library's text) or lose it (an area once writable that restore maps read-only); it changes the system's overcommit accounting, nothing the process can see"},
	{"VmFlags sd", "soft-dirty marks areas changed since the last clear; pre-dump --track-mem clears it and new areas have it, by design"},
	{"VmFlags um uw ui", "userfaultfd registration: pre-dump --track-mem registers the areas for write-protect tracking until the final dump (a test's own userfaultfd is refused at dump time)"},
	{"State R S D I", "running, sleeping, in disk sleep or idle depends on the moment of the look; stopped (T), traced (t), zombie (Z) and the rest are compared exactly"},
	{"fdinfo mnt_id", "the ID of the mount a file was opened through; a restore into a new mount namespace gets new IDs for the same mounts, and the file is compared by path and inode instead"},
	{"fdinfo ino", "only compared for files named by a path; pipes, sockets, anonymous inodes (eventfd, epoll) and deleted files are new inodes after restore"},
	{"fdinfo ino /proc", "procfs gives a file under `/proc` a new inode number each time it is looked up, so a `/proc/PID/...` file restore reopens has a new one; its path, flags and position are compared (the inode of any other file named by a path is)"},
	{"fdinfo eventfd-id", "a number the kernel allocates to each eventfd; which fds share one eventfd is compared (eventfd#1, eventfd#2 ...), not the number"},
	{"fdinfo timerfd it_value", "the time a timerfd has left runs down while it is looked at, so it is compared as armed or not (`it_value: (0, 0)` of a one-shot timer; a periodic timer is always armed, also while it shows no time left, expired and not moved on to its next period yet); the test itself checks the time left after restore within bounds (as CRIU does, restore re-arms with the time left at dump)"},
	{"fdinfo tfd ino sdev", "the inode and device of a file an epoll set watches: a new inode for pipes, sockets, eventfds after restore; the watched fd number, events, data and position are compared"},
	{"fdinfo tfd of a closed target", "an epoll target whose fd was closed, or whose number now holds another file, is registered at restore under an fd that holds the file now (the image, like CRIU's, has one fd number per target), so only for such a target the number may differ; its events, data and position are compared entry by entry, and a target whose number still holds its file keeps that number"},
	{"fdinfo tfd after CRIU's dump", "only in the modes where CRIU dumps (criu-dump, criu-dump-page-server): CRIU's dump writes each epoll target under an fd it finds on the target's file (criu/eventpoll.c looks every target up among the task's fds), not always the number it was added under, so a target may come back under another fd that held the same file before; its events, data and position are compared entry by entry"},
	{"merged area gains VmFlags gu", "MADV_GUARD_INSTALL marks a whole area VM_MAYBE_GUARD (`gu`); where the tree before kept such an area apart from an adjacent one that differs only by that mark, restore's mmaps (CRIU's too) merge the two before the guards go in, and the merged area is marked whole; an area may gain `gu` only so, never lose it, and the guard pages themselves are checked by the tests through pagemap"},
	{"threads: dynamic", "only for tests whose header says so (a Go runtime): threads the runtime started after the first look, anonymous read-write and PROT_NONE areas it mapped or dropped, and a thread caught blocking every signal while it starts another"},
}

// allowed says whether field is on the list of what restore may change.
func allowed(field string) bool {
	for _, a := range Allowances {
		if a.Field == field {
			return true
		}
	}
	return false
}

// allowedVmFlag says whether a VmFlags mnemonic is on the list: entries
// "VmFlags x y" name the mnemonics they cover.
func allowedVmFlag(flag string) bool {
	for _, a := range Allowances {
		if f, ok := strings.CutPrefix(a.Field, "VmFlags "); ok {
			for _, name := range strings.Fields(f) {
				if name == flag {
					return true
				}
			}
		}
	}
	return false
}

// AllowancesMarkdown is the list as test/zdtm/README.md shows it.
func AllowancesMarkdown() string {
	var b strings.Builder
	for _, a := range Allowances {
		fmt.Fprintf(&b, "- %s: %s.\n", a.Field, a.Why)
	}
	return b.String()
}
