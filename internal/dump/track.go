package dump

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/gockpt/gockpt/internal/images"
	"github.com/gockpt/gockpt/internal/kerndat"
	"github.com/gockpt/gockpt/internal/log"
)

// Backend names a dirty-page tracker: how an incremental dump (pre-dump or
// dump with --prev-images-dir) learns which pages changed since the parent
// images.
type Backend string

const (
	// BackendAuto picks the best tracker the kernel offers.
	BackendAuto Backend = ""
	// BackendUffdWP: a userfaultfd in WP_ASYNC mode registered on the
	// target's memory; PAGEMAP_SCAN reports written pages (Linux 6.7+).
	BackendUffdWP Backend = kerndat.TrackerUffdWP
	// BackendSoftDirty: clear_refs 4 and pagemap bit 55
	// (CONFIG_MEM_SOFT_DIRTY).
	BackendSoftDirty Backend = kerndat.TrackerSoftDirty
	// BackendHashes: no kernel help; each page's content hash is compared
	// with the parent images'. Saves disk and transfer, not read time.
	BackendHashes Backend = kerndat.TrackerHashes
)

// ParseBackend checks a --track-mem-backend value.
func ParseBackend(s string) (Backend, error) {
	switch Backend(s) {
	case BackendAuto, "auto":
		return BackendAuto, nil
	case BackendUffdWP, BackendSoftDirty, BackendHashes:
		return Backend(s), nil
	}
	return "", fmt.Errorf("unknown memory tracker %q: use auto, %s, %s or %s", s, BackendUffdWP, BackendSoftDirty, BackendHashes)
}

// chooseBackend resolves the tracker to use. Without --track-mem an
// incremental dump compares contents (hashes); with it, the best kernel
// tracker, or the one asked for if it works here.
func chooseBackend(trackMem bool, want Backend) (Backend, error) {
	if !trackMem {
		return BackendHashes, nil
	}
	works := kerndat.DirtyTrackers()
	if want == BackendAuto {
		return Backend(works[0]), nil
	}
	for _, w := range works {
		if Backend(w) == want {
			return want, nil
		}
	}
	res, _ := kerndat.Probe(probeOf(want))
	return "", fmt.Errorf("memory tracker %s does not work on this kernel (%s): use --track-mem-backend auto (here: %s), or see gockpt check --feature mem_dirty_track", want, res.Detail, works[0])
}

func probeOf(b Backend) string {
	if b == BackendSoftDirty {
		return "soft_dirty"
	}
	return "pagemap_scan"
}

// TrackFile is the file a pre-dump leaves beside its images: what the next
// pre-dump or dump needs to trust the tracking, and nothing CRIU reads.
const TrackFile = images.TrackFile

// trackState is TrackFile's content.
type trackState struct {
	// PreDump marks a directory holding only memory: restore refuses it.
	PreDump bool    `json:"pre_dump"`
	Backend Backend `json:"backend"`
	// Generation names the moment the trackers were last re-armed; the
	// keeper holds the same value while nothing re-armed them since.
	Generation string `json:"generation,omitempty"`
	// Keeper holds the userfaultfds between gockpt runs (uffd-wp).
	KeeperAddr string        `json:"keeper_addr,omitempty"`
	KeeperPid  int           `json:"keeper_pid,omitempty"`
	Tasks      []trackedTask `json:"tasks"`
}

// trackedTask is one task as the pre-dump left it.
type trackedTask struct {
	Pid       int    `json:"pid"`
	StartTime uint64 `json:"start_time"`
	// VMAs whose pages the tracker covers from this pre-dump on; any
	// other area (new, moved, resized) is all dirty next time.
	VMAs [][2]uint64 `json:"vmas,omitempty"`
}

func (s *trackState) task(pid int, start uint64) *trackedTask {
	if s == nil {
		return nil
	}
	for i := range s.Tasks {
		if s.Tasks[i].Pid == pid && s.Tasks[i].StartTime == start {
			return &s.Tasks[i]
		}
	}
	return nil
}

// covers reports whether the task's tracked VMAs include exactly [start, end).
func (t *trackedTask) covers(start, end uint64) bool {
	if t == nil {
		return false
	}
	for _, v := range t.VMAs {
		if v[0] == start && v[1] == end {
			return true
		}
	}
	return false
}

// readTrackState reads TrackFile of dir; nil without error when there is
// none (a full dump, or images written by CRIU).
func readTrackState(dir *images.Dir) (*trackState, error) {
	b, err := os.ReadFile(dir.Join(TrackFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	s, err := parseTrackState(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: the file is damaged; run a new pre-dump without --prev-images-dir", dir.Join(TrackFile), err)
	}
	return s, nil
}

// parseTrackState decodes and checks TrackFile's content.
func parseTrackState(b []byte) (*trackState, error) {
	var s trackState
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, err
	}
	switch s.Backend {
	case BackendUffdWP, BackendSoftDirty, BackendHashes:
	default:
		return nil, fmt.Errorf("unknown memory tracker %q", s.Backend)
	}
	if s.KeeperPid < 0 {
		return nil, fmt.Errorf("keeper PID %d", s.KeeperPid)
	}
	for _, t := range s.Tasks {
		if t.Pid <= 0 {
			return nil, fmt.Errorf("task PID %d", t.Pid)
		}
		for _, v := range t.VMAs {
			if v[0] >= v[1] || v[0]%4096 != 0 || v[1]%4096 != 0 {
				return nil, fmt.Errorf("task %d: bad area %#x-%#x", t.Pid, v[0], v[1])
			}
		}
	}
	return &s, nil
}

func writeTrackState(dir *images.Dir, s *trackState) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	f, err := dir.CreateFile(TrackFile)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func newGeneration() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// parentDir opens the previous images directory, given relative to the new
// one as CRIU takes it, and links it as the parent.
func linkParent(dir *images.Dir, prev string) (*images.Dir, error) {
	path := prev
	if !filepath.IsAbs(path) {
		path = filepath.Join(dir.Path(), prev)
	}
	if fi, err := os.Stat(path); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("--prev-images-dir %s: no directory %s: give the previous images directory relative to the new one (-D), e.g. ../pre1", prev, path)
	}
	pd, err := images.OpenDir(path)
	if err != nil {
		return nil, fmt.Errorf("--prev-images-dir %s (%s): %w", prev, path, err)
	}
	if a, err1 := pd.RealPath(); err1 == nil {
		if b, err2 := dir.RealPath(); err2 == nil && a == b {
			return nil, fmt.Errorf("--prev-images-dir %s is the images directory itself: give each iteration its own -D and name the previous one, e.g. -D pre2 --prev-images-dir ../pre1", prev)
		}
	}
	if !pd.Exists(images.InventoryFile) {
		return nil, fmt.Errorf("--prev-images-dir %s (%s) holds no inventory.img: it is not an images directory", prev, path)
	}
	if err := dir.LinkParent(prev); err != nil {
		return nil, err
	}
	log.Infof("parent images: %s", path)
	return pd, nil
}
