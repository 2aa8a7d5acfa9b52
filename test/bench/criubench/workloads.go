package main

import (
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
)

//go:embed csrc/workload.c
var workloadSource string

// Family groups the workloads whose cost is plotted against one size.
type Family string

// The plotted families; fds and vmas are single points, in the table only.
const (
	FamilyMemory  Family = "memory"
	FamilyTree    Family = "tree"
	FamilyThreads Family = "threads"
	FamilyFds     Family = "fds"
	FamilyVMAs    Family = "vmas"
)

// Workload is one program setup that both tools dump and restore.
type Workload struct {
	Name   string // as selected by -only and shown in the table
	Family Family
	Mode   string // workload.c's mode argument
	N      int64  // workload.c's size argument: MiB, tasks, threads, fds or VMAs
	Quick  bool   // part of the -quick smoke test
}

// Workloads is the full matrix, in table order.
var Workloads = []Workload{
	{Name: "mem-4MiB", Family: FamilyMemory, Mode: "mem", N: 4, Quick: true},
	{Name: "mem-256MiB", Family: FamilyMemory, Mode: "mem", N: 256},
	{Name: "mem-1GiB", Family: FamilyMemory, Mode: "mem", N: 1024},
	{Name: "mem-4GiB", Family: FamilyMemory, Mode: "mem", N: 4096},
	{Name: "tree-1", Family: FamilyTree, Mode: "tree", N: 1},
	{Name: "tree-10", Family: FamilyTree, Mode: "tree", N: 10, Quick: true},
	{Name: "tree-100", Family: FamilyTree, Mode: "tree", N: 100},
	{Name: "tree-1000", Family: FamilyTree, Mode: "tree", N: 1000},
	{Name: "threads-1", Family: FamilyThreads, Mode: "threads", N: 1},
	{Name: "threads-64", Family: FamilyThreads, Mode: "threads", N: 64, Quick: true},
	{Name: "threads-1024", Family: FamilyThreads, Mode: "threads", N: 1024},
	{Name: "fds-10000", Family: FamilyFds, Mode: "fds", N: 10000, Quick: true},
	{Name: "vmas-1000", Family: FamilyVMAs, Mode: "vmas", N: 1000, Quick: true},
}

// Select returns the workloads whose name matches only (all when only is
// empty), restricted to the -quick subset when quick is set.
func Select(all []Workload, only string, quick bool) ([]Workload, error) {
	var re *regexp.Regexp
	if only != "" {
		var err error
		if re, err = regexp.Compile(only); err != nil {
			return nil, fmt.Errorf("-only %q: %w", only, err)
		}
	}
	var out []Workload
	for _, w := range all {
		if quick && !w.Quick {
			continue
		}
		if re != nil && !re.MatchString(w.Name) {
			continue
		}
		out = append(out, w)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no workload matches -only %q (workloads: %s)", only, names(all))
	}
	return out, nil
}

func names(ws []Workload) string {
	s := ""
	for i, w := range ws {
		if i > 0 {
			s += " "
		}
		s += w.Name
	}
	return s
}

// Tasks is the number of processes the workload runs: one line each in
// the state file on every SIGUSR1.
func (w Workload) Tasks() int {
	if w.Mode == "tree" {
		return int(w.N)
	}
	return 1
}

// Threads is the number of threads of the root task.
func (w Workload) Threads() int {
	if w.Mode == "threads" {
		return int(w.N)
	}
	return 1
}

// WantOK is the OK count a task of the workload reports when all its state
// is intact: its pages, its other threads, its fds or its VMAs.
func (w Workload) WantOK() int64 {
	switch w.Mode {
	case "mem", "touch":
		return w.N << 20 / 4096
	case "tree":
		return 1 << 20 / 4096
	case "threads":
		return w.N - 1
	default: // fds, vmas
		return w.N
	}
}

// Args is the workload program's command line after its path.
func (w Workload) Args(ready, state string) []string {
	return []string{w.Mode, strconv.FormatInt(w.N, 10), ready, state}
}

// BuildWorkload compiles workload.c into dir and returns the program's path.
func BuildWorkload(dir string) (string, error) {
	src := filepath.Join(dir, "workload.c")
	bin := filepath.Join(dir, "workload")
	if err := os.WriteFile(src, []byte(workloadSource), 0o644); err != nil {
		return "", err
	}
	out, err := exec.Command("gcc", "-O2", "-Wall", "-pthread", "-o", bin, src).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("compile the workload with gcc: %w\n%s", err, out)
	}
	return bin, nil
}
