// zdtm: desc: a Go program: goroutines passing tokens over channels, a time.Ticker, periodic GC over a live map, all checked to still work after restore (CGO_ENABLED=0)
// zdtm: modes: restore snapshot twice predump criu-restore criu-dump criu-predump
// zdtm: threads: dynamic

// Command runtime is a zdtm test for the Go runtime's own state: its
// threads, timers, channels and garbage collector. It speaks the zdtm
// protocol: run with -p PIDFILE, it re-executes itself in a new session,
// writes PIDFILE once set up, and on SIGTERM prints PASS or FAIL lines.
package main

import (
	"flag"
	"fmt"
	"hash/crc32"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

const childEnv = "ZDTM_GO_CHILD"

func main() {
	pidfile := flag.String("p", "", "pid file to write when ready")
	flag.Parse()
	if *pidfile == "" {
		fmt.Fprintln(os.Stderr, "usage: runtime -p PIDFILE")
		os.Exit(2)
	}
	if os.Getenv(childEnv) == "" {
		os.Exit(launch(*pidfile))
	}
	os.Exit(run(*pidfile))
}

// launch starts the test's root task in its own session and waits until it
// is ready, so that the runner sees a set-up test when this process exits.
func launch(pidfile string) int {
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		fmt.Printf("FAIL: start test root: %v\n", err)
		return 1
	}
	for i := 0; i < 1000; i++ {
		if _, err := os.Stat(pidfile); err == nil {
			return 0
		}
		var ws syscall.WaitStatus
		if pid, _ := syscall.Wait4(cmd.Process.Pid, &ws, syscall.WNOHANG, nil); pid == cmd.Process.Pid {
			fmt.Printf("FAIL: test root exited before ready: %v\n", ws)
			return 1
		}
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Println("FAIL: test root not ready after 10s")
	return 1
}

type state struct {
	data     map[int]string
	sum      uint32
	ticks    atomic.Int64
	passes   atomic.Int64
	failures []string
}

func (s *state) failf(format string, args ...any) {
	s.failures = append(s.failures, fmt.Sprintf(format, args...))
}

func checksum(m map[int]string) uint32 {
	var sum uint32
	for k, v := range m {
		sum += crc32.ChecksumIEEE([]byte(strconv.Itoa(k) + "=" + v))
	}
	return sum
}

func run(pidfile string) int {
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	s := &state{data: make(map[int]string)}
	for i := 0; i < 20000; i++ {
		s.data[i] = fmt.Sprintf("value-%d-%x", i, i*7919)
	}
	s.sum = checksum(s.data)

	// A ring of goroutines passing a token around.
	const ring = 8
	chans := make([]chan int, ring)
	for i := range chans {
		chans[i] = make(chan int)
	}
	stop := make(chan struct{})
	for i := 0; i < ring; i++ {
		go func(in, out chan int) {
			for {
				select {
				case v := <-in:
					s.passes.Add(1)
					select {
					case out <- v + 1:
					case <-stop:
						return
					}
				case <-stop:
					return
				}
			}
		}(chans[i], chans[(i+1)%ring])
	}
	chans[0] <- 0

	ticker := time.NewTicker(10 * time.Millisecond)
	go func() {
		for range ticker.C {
			s.ticks.Add(1)
		}
	}()
	// Garbage that keeps the collector busy.
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			b := make([]byte, 1<<20)
			b[0] = 1
			time.Sleep(5 * time.Millisecond)
		}
	}()
	time.Sleep(100 * time.Millisecond)
	if err := writePidfile(pidfile); err != nil {
		fmt.Printf("FAIL: %v\n", err)
		return 1
	}
	<-term
	s.check()
	close(stop)
	ticker.Stop()
	if len(s.failures) > 0 {
		for _, f := range s.failures {
			fmt.Println("FAIL: " + f)
		}
		return 1
	}
	fmt.Println("PASS")
	return 0
}

func (s *state) check() {
	if os.Getpid() != mustPid() {
		s.failf("pid changed")
	}
	t0, p0 := s.ticks.Load(), s.passes.Load()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	gc0 := ms.NumGC
	time.Sleep(200 * time.Millisecond)
	runtime.GC()
	runtime.ReadMemStats(&ms)
	if d := s.ticks.Load() - t0; d < 5 {
		s.failf("ticker: %d ticks in 200 ms after restore", d)
	}
	if d := s.passes.Load() - p0; d < 100 {
		s.failf("channel ring: %d passes in 200 ms after restore", d)
	}
	if ms.NumGC <= gc0 {
		s.failf("GC did not run: NumGC %d, was %d", ms.NumGC, gc0)
	}
	if len(s.data) != 20000 || checksum(s.data) != s.sum {
		s.failf("map changed: %d entries, checksum %x want %x", len(s.data), checksum(s.data), s.sum)
	}
	start := time.Now()
	time.Sleep(20 * time.Millisecond)
	if d := time.Since(start); d < 20*time.Millisecond || d > 5*time.Second {
		s.failf("time.Since a 20 ms sleep is %v", d)
	}
}

var startPid = os.Getpid()

func mustPid() int { return startPid }

func writePidfile(path string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return fmt.Errorf("write pid file: %w", err)
	}
	return os.Rename(tmp, path)
}
