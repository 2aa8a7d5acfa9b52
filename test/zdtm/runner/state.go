package main

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Task is what the runner records about one process of a test's tree.
type Task struct {
	PID, PPID, PGID, SID int
	StartTime            uint64
	Threads              []int
	Comm                 map[int]string // per thread
	// ThreadStatus holds, per thread, the threadStatusKeys lines of
	// /proc/PID/task/TID/status and the scheduling fields of its stat
	// (policy, rt_priority, nice).
	ThreadStatus map[int]map[string]string
	// Status holds what the threads share: the statusKeys lines of
	// /proc/PID/status, oom_score_adj and loginuid.
	Status      map[string]string
	Maps        []Mapping // from /proc/PID/smaps, with VmFlags
	FDs         map[int]FD
	Cwd, Exe    string
	Personality string
}

// Tree is a test's process tree at one moment.
type Tree struct {
	Root  int
	Tasks map[int]*Task
}

// statusKeys are the /proc/PID/status lines that belong to the process as a
// whole and must survive a restore.
var statusKeys = []string{"Umask", "ShdPnd", "SigIgn", "SigCgt"}

// threadStatusKeys are the /proc/PID/task/TID/status lines that belong to
// each thread (credentials, masks, seccomp, affinity are per thread) and
// must survive a restore. State is compared by class (allowed "State R S D
// I"). Pending signals are compared as they stand after 200 ms of looks
// (lookUntilSame): a signal that stays pending is state, one delivered at
// once is not seen twice. Lines a kernel lacks are absent on both sides.
var threadStatusKeys = []string{"State", "TracerPid", "Uid", "Gid", "Groups", "SigPnd", "SigBlk",
	"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp", "Seccomp_filters",
	"Speculation_Store_Bypass", "SpeculationIndirectBranch", "Cpus_allowed_list", "Mems_allowed_list",
	"x86_Thread_features", "x86_Thread_features_locked"}

// schedPolicies names the values of the policy field of /proc/PID/stat.
var schedPolicies = map[string]string{"0": "SCHED_OTHER", "1": "SCHED_FIFO", "2": "SCHED_RR",
	"3": "SCHED_BATCH", "5": "SCHED_IDLE", "6": "SCHED_DEADLINE", "7": "SCHED_EXT"}

// statFields splits /proc/PID/stat after the comm (which may hold spaces
// and parentheses): element 0 is field 3 of proc(5), state.
func statFields(text string) ([]string, error) {
	i := strings.LastIndexByte(text, ')')
	if i < 0 {
		return nil, fmt.Errorf("no ')' in stat %q", text)
	}
	return strings.Fields(text[i+1:]), nil
}

// ParseStat returns ppid, pgrp, session and starttime from /proc/PID/stat.
func ParseStat(text string) (ppid, pgid, sid int, start uint64, state byte, err error) {
	f, err := statFields(text)
	if err != nil {
		return 0, 0, 0, 0, 0, err
	}
	// Fields after comm: state(0) ppid(1) pgrp(2) session(3) ... starttime(19).
	if len(f) < 20 {
		return 0, 0, 0, 0, 0, fmt.Errorf("stat has %d fields after comm", len(f))
	}
	state = f[0][0]
	if ppid, err = strconv.Atoi(f[1]); err != nil {
		return
	}
	if pgid, err = strconv.Atoi(f[2]); err != nil {
		return
	}
	if sid, err = strconv.Atoi(f[3]); err != nil {
		return
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	return
}

// ParseSched returns the scheduling fields of a thread's /proc/PID/stat:
// "policy" (number and name), "rt_priority" and "nice".
func ParseSched(text string) (map[string]string, error) {
	f, err := statFields(text)
	if err != nil {
		return nil, err
	}
	// proc(5) fields 19 nice, 40 rt_priority, 41 policy; f[0] is field 3.
	if len(f) < 39 {
		return nil, fmt.Errorf("stat has %d fields after comm, want the policy (field 41)", len(f))
	}
	policy := f[38]
	if name, ok := schedPolicies[policy]; ok {
		policy += " (" + name + ")"
	}
	return map[string]string{"policy": policy, "rt_priority": f[37], "nice": f[16]}, nil
}

// ParseStatus picks keys out of /proc/PID/status text.
func ParseStatus(text string, keys []string) map[string]string {
	want := map[string]bool{}
	for _, k := range keys {
		want[k] = true
	}
	out := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && want[k] {
			out[k] = strings.Join(strings.Fields(v), " ")
		}
	}
	return out
}

// ParseFdinfo returns what the runner compares of /proc/PID/fdinfo/N: pos,
// flags, ino, and the other lines as "key: value" (sorted: epoll lists its
// targets in the order of kernel addresses), without mnt_id (allowed
// "fdinfo mnt_id") and with the inode and device of epoll targets cut
// (allowed "fdinfo tfd ino sdev").
func ParseFdinfo(text string) FD {
	var fd FD
	var itValue string
	for _, line := range strings.Split(text, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.Join(strings.Fields(v), " ")
		switch k {
		case "pos":
			fd.Pos = v
		case "flags":
			fd.Flags = v
		case "ino":
			fd.Ino = v
		case "mnt_id":
			if !allowed("fdinfo mnt_id") {
				fd.Extra = append(fd.Extra, k+": "+v)
			}
		case "it_value":
			// Set below, once it_interval is known.
			itValue = v
		case "tfd":
			var keep []string
			var tfd Tfd
			for i, w := range strings.Fields(v) {
				if i == 0 {
					tfd.FD, _ = strconv.Atoi(w)
				}
				if (strings.HasPrefix(w, "ino:") || strings.HasPrefix(w, "sdev:")) && allowed("fdinfo tfd ino sdev") {
					continue
				}
				keep = append(keep, w)
			}
			tfd.Line = k + ": " + strings.Join(keep, " ")
			fd.Extra = append(fd.Extra, tfd.Line)
			fd.Tfds = append(fd.Tfds, tfd)
		default:
			fd.Extra = append(fd.Extra, k+": "+v)
		}
	}
	if itValue != "" {
		fd.Extra = append(fd.Extra, "it_value: "+timerfdValue(itValue, text))
	}
	sort.Strings(fd.Extra)
	return fd
}

// timerfdValue is what the runner compares of a timerfd's it_value: the
// time left runs down, so only whether the timer is armed (allowed
// "fdinfo timerfd it_value"); a periodic timer always is, even while it
// shows no time left (expired, not moved on to its next period yet).
func timerfdValue(v, text string) string {
	if !allowed("fdinfo timerfd it_value") {
		return v
	}
	if v != "(0, 0)" || !strings.Contains(text, "it_interval: (0, 0)") {
		return "armed"
	}
	return v
}

func readString(path string) (string, error) {
	b, err := os.ReadFile(path)
	return string(b), err
}

// treePIDs lists root and all its descendants, following every thread's
// children file until the set stops growing.
func treePIDs(root int) []int {
	seen := map[int]bool{root: true}
	queue := []int{root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		for _, c := range childrenOf(pid) {
			if !seen[c] {
				seen[c] = true
				queue = append(queue, c)
			}
		}
	}
	out := make([]int, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	sort.Ints(out)
	return out
}

func childrenOf(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, t := range tasks {
		s, err := readString(t)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(s) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

func threadsOf(pid int) []int {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	var out []int
	for _, e := range ents {
		if t, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, t)
		}
	}
	sort.Ints(out)
	return out
}

// CollectTree records the tree rooted at root.
func CollectTree(root int) (*Tree, error) {
	t := &Tree{Root: root, Tasks: map[int]*Task{}}
	for _, pid := range treePIDs(root) {
		task, err := collectTask(pid)
		if err != nil {
			return nil, err
		}
		t.Tasks[pid] = task
	}
	return t, nil
}

func collectTask(pid int) (*Task, error) {
	p := fmt.Sprintf("/proc/%d", pid)
	stat, err := readString(p + "/stat")
	if err != nil {
		return nil, fmt.Errorf("task %d: %w", pid, err)
	}
	t := &Task{PID: pid, Comm: map[int]string{}, ThreadStatus: map[int]map[string]string{}, FDs: map[int]FD{}}
	var state byte
	if t.PPID, t.PGID, t.SID, t.StartTime, state, err = ParseStat(stat); err != nil {
		return nil, fmt.Errorf("task %d: %w", pid, err)
	}
	if state == 'Z' {
		// A zombie has no mm, fds or threads left to compare.
		t.Threads = []int{pid}
		return t, nil
	}
	t.Threads = threadsOf(pid)
	for _, tid := range t.Threads {
		tp := fmt.Sprintf("%s/task/%d", p, tid)
		comm, _ := readString(tp + "/comm")
		t.Comm[tid] = strings.TrimSuffix(comm, "\n")
		st, _ := readString(tp + "/status")
		t.ThreadStatus[tid] = ParseStatus(st, threadStatusKeys)
		// A thread gone since threadsOf has no stat: it is then missing
		// from the next look's threads, and reported there.
		if tstat, err := readString(tp + "/stat"); err == nil {
			if sched, err := ParseSched(tstat); err == nil {
				for k, v := range sched {
					t.ThreadStatus[tid][k] = v
				}
			}
		}
	}
	st, err := readString(p + "/status")
	if err != nil {
		return nil, fmt.Errorf("task %d: %w", pid, err)
	}
	t.Status = ParseStatus(st, statusKeys)
	for _, name := range []string{"oom_score_adj", "loginuid"} {
		v, err := readString(p + "/" + name)
		if err != nil {
			return nil, fmt.Errorf("task %d: %w", pid, err)
		}
		t.Status[name] = strings.TrimSpace(v)
	}
	smaps, err := readString(p + "/smaps")
	if err != nil {
		return nil, fmt.Errorf("task %d: %w", pid, err)
	}
	if t.Maps, err = ParseSmaps(smaps); err != nil {
		return nil, fmt.Errorf("task %d: %w", pid, err)
	}
	ents, err := os.ReadDir(p + "/fd")
	if err != nil {
		return nil, fmt.Errorf("task %d: %w", pid, err)
	}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		target, err := os.Readlink(fmt.Sprintf("%s/fd/%d", p, fd))
		if err != nil {
			continue
		}
		info, _ := readString(fmt.Sprintf("%s/fdinfo/%d", p, fd))
		f := ParseFdinfo(info)
		f.Target = target
		t.FDs[fd] = f
	}
	epollHolders(pid, t.FDs)
	t.Cwd, _ = os.Readlink(p + "/cwd")
	t.Exe, _ = os.Readlink(p + "/exe")
	pers, _ := readString(p + "/personality")
	t.Personality = strings.TrimSpace(pers)
	return t, nil
}

// DiffOptions relaxes DiffTrees for what a test cannot hold still.
type DiffOptions struct {
	// DynamicThreads: the runtime (Go's) starts threads when it likes, so
	// got may have threads want lacks; every thread of want must still be
	// there. Such a runtime also maps and unmaps anonymous memory on its own
	// (heap arenas, stacks) between the look before the checkpoint and the
	// dump: anonymous read-write areas and PROT_NONE reservations may come
	// and go.
	DynamicThreads bool
	// CRIUDumped: CRIU dumped the tree (mode criu-dump), and names each
	// epoll target by an fd of its own choosing on the target's file
	// (allowed "fdinfo tfd after CRIU's dump").
	CRIUDumped bool
}

// allBlocked is the SigBlk of a thread that blocks every signal it can
// (all but SIGKILL and SIGSTOP). Go's runtime does so for a moment in the
// thread that starts another, so a look at a dynamic-threads test may catch
// it there: such a mask on either side is not compared.
const allBlocked = "fffffffffffbfeff"

func without(m map[string]string, key string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if k != key {
			out[k] = v
		}
	}
	return out
}

// runtimeAnon tells whether a maps diff line is about an anonymous private
// area, read-write or an inaccessible reservation, which a managed runtime
// makes and drops as it likes: Go reserves address space PROT_NONE and turns
// pieces of it into read-write heap as the heap grows, so a test that runs
// for a while (the pre-dump modes) sees its reservations shrink.
func runtimeAnon(d string) bool {
	for _, verb := range []string{": gained ", ": lost "} {
		if i := strings.Index(d, verb); i >= 0 {
			f := strings.Fields(d[i+len(verb):])
			if len(f) < 5 || (f[1] != "rw-p" && f[1] != "---p") || f[3] != "00:00" || f[4] != "0" {
				return false
			}
			for _, x := range f[5:] {
				// No path: only the smaps fields may follow.
				if !strings.HasPrefix(x, "vmflags=") && !strings.HasPrefix(x, "pkey=") {
					return false
				}
			}
			return true
		}
	}
	return false
}

// DiffTrees lists every difference between the tree before a checkpoint and
// after a restore; nil means the same.
func DiffTrees(want, got *Tree, opt DiffOptions) []string {
	var out []string
	if want.Root != got.Root {
		out = append(out, fmt.Sprintf("root pid %d, want %d", got.Root, want.Root))
	}
	out = append(out, DiffLines("pids", intLines(sortedKeys(want.Tasks)), intLines(sortedKeys(got.Tasks)))...)
	for _, pid := range sortedKeys(want.Tasks) {
		w, g := want.Tasks[pid], got.Tasks[pid]
		if g == nil {
			continue
		}
		out = append(out, diffTask(w, g, pid == want.Root, opt)...)
	}
	wantFDs, gotFDs := map[int]map[int]FD{}, map[int]map[int]FD{}
	for pid, t := range want.Tasks {
		wantFDs[pid] = t.FDs
	}
	for pid, t := range got.Tasks {
		gotFDs[pid] = t.FDs
	}
	if allowed("fdinfo tfd of a closed target") {
		wantFDs, gotFDs = epollMovedTargets(wantFDs, gotFDs, opt.CRIUDumped && allowed("fdinfo tfd after CRIU's dump"))
	}
	wn, gn := NormalizeFDs(wantFDs), NormalizeFDs(gotFDs)
	for _, pid := range sortedKeys(want.Tasks) {
		out = append(out, DiffLines(fmt.Sprintf("task %d fds", pid), wn[pid], gn[pid])...)
	}
	return out
}

func diffTask(w, g *Task, isRoot bool, opt DiffOptions) []string {
	var out []string
	pfx := fmt.Sprintf("task %d", w.PID)
	if !isRoot && w.PPID != g.PPID {
		out = append(out, fmt.Sprintf("%s: ppid %d, want %d", pfx, g.PPID, w.PPID))
	}
	if w.PGID != g.PGID || w.SID != g.SID {
		out = append(out, fmt.Sprintf("%s: pgid/sid %d/%d, want %d/%d", pfx, g.PGID, g.SID, w.PGID, w.SID))
	}
	for _, d := range DiffLines(pfx+" threads", intLines(w.Threads), intLines(g.Threads)) {
		if opt.DynamicThreads && strings.Contains(d, ": gained ") {
			continue
		}
		out = append(out, d)
	}
	for _, tid := range w.Threads {
		if _, ok := g.Comm[tid]; !ok && opt.DynamicThreads {
			continue // reported as lost above
		}
		if wc, gc := w.Comm[tid], g.Comm[tid]; wc != gc {
			out = append(out, fmt.Sprintf("%s thread %d: comm %q, want %q", pfx, tid, gc, wc))
		}
		tw, tg := w.ThreadStatus[tid], g.ThreadStatus[tid]
		if opt.DynamicThreads && (tw["SigBlk"] == allBlocked || tg["SigBlk"] == allBlocked) {
			tw, tg = without(tw, "SigBlk"), without(tg, "SigBlk")
		}
		if allowed("State R S D I") && stateClass(tw["State"]) == stateClass(tg["State"]) {
			tw, tg = without(tw, "State"), without(tg, "State")
		}
		out = append(out, diffMap(fmt.Sprintf("%s thread %d", pfx, tid), tw, tg)...)
	}
	out = append(out, diffMap(pfx, w.Status, g.Status)...)
	wm, gm := NormalizeMapsPair(w.Maps, g.Maps)
	for _, d := range DiffLines(pfx+" maps", wm, gm) {
		if opt.DynamicThreads && runtimeAnon(d) {
			continue
		}
		out = append(out, d)
	}
	for _, f := range []struct{ name, w, g string }{
		{"cwd", w.Cwd, g.Cwd}, {"exe", w.Exe, g.Exe}, {"personality", w.Personality, g.Personality},
	} {
		if f.w != f.g {
			out = append(out, fmt.Sprintf("%s: %s %q, want %q", pfx, f.name, f.g, f.w))
		}
	}
	return out
}

// stateClass maps a status State line to what is compared of it: running,
// sleeping, disk sleep and idle are one class, the rest (stopped, traced,
// zombie, dead) are themselves.
func stateClass(state string) string {
	if state != "" && strings.ContainsRune("RSDI", rune(state[0])) {
		return "R S D I"
	}
	return state
}

func diffMap(pfx string, w, g map[string]string) []string {
	var keys []string
	for k := range w {
		keys = append(keys, k)
	}
	for k := range g {
		if _, ok := w[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var out []string
	for _, k := range keys {
		if w[k] != g[k] {
			out = append(out, fmt.Sprintf("%s: %s %q, want %q", pfx, k, g[k], w[k]))
		}
	}
	return out
}

func intLines(v []int) []string {
	out := make([]string, len(v))
	for i, x := range v {
		out[i] = strconv.Itoa(x)
	}
	return out
}

// epollHolders fills in, for each epoll target of the task's fds, which of
// its fds hold the open file the target watches. Targets added under one
// number are told apart by their order (the kernel's toff).
func epollHolders(pid int, fds map[int]FD) {
	for efd, f := range fds {
		toff := map[int]int{}
		for i, t := range f.Tfds {
			var holders []int
			for _, fd := range sortedKeys(fds) {
				if fd != efd && epollHolds(pid, efd, t.FD, toff[t.FD], fd) {
					holders = append(holders, fd)
				}
			}
			toff[t.FD]++
			f.Tfds[i].Holders = holders
		}
	}
}

// movedTfd is what an epoll target line says in place of its fd number when
// that number may differ (allowed "fdinfo tfd of a closed target").
const movedTfd = "tfd: (not open on its file before)"

// epollMovedTargets rewrites the fd number of epoll targets whose number,
// in the tree before (want), was not an fd on the open file the target
// watches (Tfd.Holders) into movedTfd, in want and in got, so that those are
// compared by events, data and position only. With anyHolder (CRIU dumped
// the tree), a target whose number held its file may come back under any fd
// that held the same file before: its number is written as the list of
// those fds on both sides. In got, a target line is rewritten only where
// its epoll fd had such targets before, and only if it is not one of the
// lines of the targets that kept their number. The maps given are not
// changed.
func epollMovedTargets(want, got map[int]map[int]FD, anyHolder bool) (map[int]map[int]FD, map[int]map[int]FD) {
	outW, outG := map[int]map[int]FD{}, map[int]map[int]FD{}
	for pid, fds := range want {
		outW[pid] = maps.Clone(fds)
	}
	for pid, fds := range got {
		outG[pid] = maps.Clone(fds)
	}
	type alt struct {
		label, rest string
		holders     map[int]bool
		used        bool
	}
	for pid, fds := range want {
		for n, f := range fds {
			if len(f.Tfds) == 0 {
				continue
			}
			exact := map[string]int{}
			var alts []*alt
			var lines []string
			changed := false
			for _, t := range f.Tfds {
				holders := map[int]bool{}
				for _, m := range t.Holders {
					holders[m] = true
				}
				switch {
				case !holders[t.FD]:
					changed = true
					lines = append(lines, movedLine(t.Line))
				case anyHolder && len(holders) > 1:
					changed = true
					a := &alt{label: "tfd: one of " + strings.Join(intLines(sortedKeys(holders)), " "), rest: tfdRest(t.Line), holders: holders}
					alts = append(alts, a)
					lines = append(lines, a.label+" "+a.rest)
				default:
					exact[t.Line]++
					lines = append(lines, t.Line)
				}
			}
			if !changed {
				continue
			}
			outW[pid][n] = withTfdLines(f, lines)
			g, ok := outG[pid][n]
			if !ok {
				continue
			}
			lines = nil
		next:
			for _, t := range g.Tfds {
				if exact[t.Line] > 0 {
					exact[t.Line]--
					lines = append(lines, t.Line)
					continue
				}
				for _, a := range alts {
					if !a.used && a.holders[t.FD] && a.rest == tfdRest(t.Line) {
						a.used = true
						lines = append(lines, a.label+" "+a.rest)
						continue next
					}
				}
				lines = append(lines, movedLine(t.Line))
			}
			outG[pid][n] = withTfdLines(g, lines)
		}
	}
	return outW, outG
}

// tfdRest is a target line after its fd number: events, data, position.
func tfdRest(line string) string {
	f := strings.Fields(line)
	if len(f) < 2 {
		return ""
	}
	return strings.Join(f[2:], " ")
}

func movedLine(line string) string {
	return movedTfd + " " + tfdRest(line)
}

// withTfdLines is f with its epoll target lines replaced by lines.
func withTfdLines(f FD, lines []string) FD {
	var extra []string
	for _, x := range f.Extra {
		if !strings.HasPrefix(x, "tfd: ") {
			extra = append(extra, x)
		}
	}
	f.Extra = append(extra, lines...)
	sort.Strings(f.Extra)
	return f
}
