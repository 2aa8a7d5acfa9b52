package kerndat

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Version is a kernel release, major.minor.patch.
type Version struct{ Major, Minor, Patch int }

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

// AtLeast reports whether v >= major.minor.
func (v Version) AtLeast(major, minor int) bool {
	return v.Major > major || v.Major == major && v.Minor >= minor
}

// ParseVersion reads the leading "X.Y[.Z]" of a kernel release string.
func ParseVersion(release string) (Version, error) {
	var v Version
	num := func(s string) (int, string) {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		n, _ := strconv.Atoi(s[:i])
		return n, s[i:]
	}
	rest := release
	var tail string
	v.Major, tail = num(rest)
	if tail == rest || !strings.HasPrefix(tail, ".") {
		return v, fmt.Errorf("kernel release %q: want X.Y", release)
	}
	rest = tail[1:]
	v.Minor, tail = num(rest)
	if tail == rest {
		return v, fmt.Errorf("kernel release %q: want X.Y", release)
	}
	if strings.HasPrefix(tail, ".") {
		v.Patch, _ = num(tail[1:])
	}
	return v, nil
}

// KernelVersion is the running kernel's version (uname -r).
var KernelVersion = sync.OnceValues(func() (Version, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return Version{}, fmt.Errorf("uname: %w", err)
	}
	return ParseVersion(unix.ByteSliceToString(u.Release[:]))
})

// kernelConfig reads the running kernel's build configuration from
// /proc/config.gz or /boot/config-RELEASE; nil when neither exists.
var kernelConfig = sync.OnceValue(func() map[string]string {
	var r io.Reader
	if f, err := os.Open("/proc/config.gz"); err == nil {
		defer f.Close()
		if z, err := gzip.NewReader(f); err == nil {
			r = z
		}
	}
	if r == nil {
		var u unix.Utsname
		if unix.Uname(&u) != nil {
			return nil
		}
		f, err := os.Open("/boot/config-" + unix.ByteSliceToString(u.Release[:]))
		if err != nil {
			return nil
		}
		defer f.Close()
		r = f
	}
	m := map[string]string{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if name, ok := strings.CutPrefix(line, "# "); ok && strings.HasSuffix(name, " is not set") {
			m[strings.TrimSuffix(name, " is not set")] = "n"
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok && strings.HasPrefix(k, "CONFIG_") {
			m[k] = strings.Trim(v, `"`)
		}
	}
	if sc.Err() != nil {
		return nil
	}
	return m
})

// configOption returns a CONFIG_ option's value: "y", "m", a string, "n" for
// "is not set", "" when unknown (no config available or not listed).
func configOption(name string) string {
	m := kernelConfig()
	if m == nil {
		return ""
	}
	if v, ok := m[name]; ok {
		return v
	}
	return "n"
}
