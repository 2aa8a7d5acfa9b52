package parasite

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/gockpt/gockpt/internal/ptrace"
)

func TestBlobDigest(t *testing.T) {
	sum := sha256.Sum256(blob)
	if hex.EncodeToString(sum[:]) != blobSHA256 || len(blob) != blobSize {
		t.Fatal("embedded blob does not match blob_gen.go: run gen.sh")
	}
	if blobDataStart%pageSize != 0 || blobArgs < blobDataStart || blobArgs+argsSize > blobSize || blobBSSEnd < blobSize {
		t.Fatalf("blob layout: data %#x args %#x size %#x bss end %#x", blobDataStart, blobArgs, blobSize, blobBSSEnd)
	}
}

// TestGenReproducible rebuilds the blob from a copy of the sources in
// another directory and expects the committed files byte for byte.
func TestGenReproducible(t *testing.T) {
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("no gcc")
	}
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "blob"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"gen.sh", "blob/entry.S", "blob/parasite.c", "blob/parasite.lds", "blob/protocol.h"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("sh", filepath.Join(dir, "gen.sh"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gen.sh: %v\n%s", err, out)
	}
	for _, f := range []string{"blob/parasite.bin", "blob_gen.go"} {
		want, _ := os.ReadFile(f)
		got, _ := os.ReadFile(filepath.Join(dir, f))
		if !bytes.Equal(got, want) {
			t.Errorf("%s rebuilt elsewhere differs from the committed one", f)
		}
	}
}

func TestDecodeReply(t *testing.T) {
	ok := encodeRequest(cmdMisc, make([]byte, miscSize))
	if _, errno, err := decodeReply(cmdMisc, ok); err != nil || errno != 0 {
		t.Fatalf("good reply: %v %v", errno, err)
	}
	bad := append([]byte{}, ok...)
	le.PutUint32(bad[8:], uint32(syscall.EPERM))
	if _, errno, err := decodeReply(cmdMisc, bad); err != nil || errno != syscall.EPERM {
		t.Fatalf("errno reply: %v %v", errno, err)
	}
	for name, tc := range map[string]struct {
		b    []byte
		want string
	}{
		"short":   {ok[:10], "short reply to DumpMisc: 10 bytes"},
		"command": {ok, "reply to DumpSigactions is for DumpMisc"},
		"length":  {ok[:hdrSize+4], "reply to DumpMisc: header says 104 payload bytes, packet has 4"},
	} {
		c := cmdMisc
		if name == "command" {
			c = cmdSigactions
		}
		if _, _, err := decodeReply(c, tc.b); err == nil || err.Error() != tc.want {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
	v := append([]byte{}, ok...)
	le.PutUint16(v[4:], protoVersion+1)
	if _, _, err := decodeReply(cmdMisc, v); err == nil {
		t.Errorf("accepted protocol version %d", protoVersion+1)
	}
}

func TestRestartedRegs(t *testing.T) {
	const poll, nanosleep, read, wait4 = 7, 35, 0, 61
	for _, tc := range []struct {
		orig, rax, rip   uint64
		wantRax, wantRip uint64
	}{
		{^uint64(0), 7, 100, 7, 100},                                     // not in a syscall
		{read, negErrno(errRestartSys), 100, read, 98},                   // restarted
		{read, negErrno(errRestartNoIntr), 100, read, 98},                // restarted
		{read, negErrno(errRestartNoHand), 100, read, 98},                // restarted
		{nanosleep, negErrno(errRestartRestartB), 100, nanosleep, 98},    // run again
		{poll, negErrno(errRestartRestartB), 100, poll, 98},              // run again
		{wait4, negErrno(errRestartRestartB), 100, negErrno(eintr), 100}, // EINTR
		{read, 5, 100, 5, 100},                                           // completed
	} {
		r := restartedRegs(ptrace.Regs{Orig_rax: tc.orig, Rax: tc.rax, Rip: tc.rip})
		if r.Rax != tc.wantRax || r.Rip != tc.wantRip {
			t.Errorf("orig %d rax %d: got rax %d rip %d, want %d %d", int64(tc.orig), int64(tc.rax), int64(r.Rax), r.Rip, int64(tc.wantRax), tc.wantRip)
		}
	}
}

func TestSigframeLayout(t *testing.T) {
	x := make([]byte, 2696)
	le.PutUint64(x[fxSwReserved:], 0x7)  // XCR0: x87, SSE, AVX
	le.PutUint64(x[xsaveHeader:], 0x207) // xstate_bv with a bit XCR0 lacks
	regs := ptrace.Regs{R8: 8, R15: 15, Rdi: 0xd1, Rip: 0x1234, Rsp: 0x7000, Eflags: 0x246, Cs: 0x33, Ss: 0x2b, Orig_rax: ^uint64(0)}
	f, uc, err := buildSigframe(0x10000, regs, 0x5, Stack{SP: 0x9000, Size: 0x2000}, x)
	if err != nil {
		t.Fatal(err)
	}
	if uc != 0x10008 {
		t.Fatalf("uc at %#x", uc)
	}
	check := func(name string, off int, got, want uint64) {
		if got != want {
			t.Errorf("%s at %d: %#x, want %#x", name, off, got, want)
		}
	}
	u64 := func(off int) uint64 { return le.Uint64(f[off:]) }
	check("uc_flags", 8, u64(8), 7)
	check("uc_stack.ss_sp", 24, u64(24), 0x9000)
	check("uc_stack.ss_size", 40, u64(40), 0x2000)
	check("r8", 48, u64(48), 8)
	check("r15", 48+56, u64(48+56), 15)
	check("rdi", 48+64, u64(48+64), 0xd1)
	check("rip", 48+128, u64(48+128), 0x1234)
	check("rsp", 48+120, u64(48+120), 0x7000)
	check("eflags", 48+136, u64(48+136), 0x246)
	check("cs", 48+144, uint64(le.Uint16(f[48+144:])), 0x33)
	check("ss", 48+150, uint64(le.Uint16(f[48+150:])), 0x2b)
	check("fpstate", 48+184, u64(48+184), 0x10000+448)
	check("uc_sigmask", 8+296, u64(8+296), 5)
	fp := f[448:]
	avxOff, avxSize := ptrace.XstateComponent(2)
	size := uint64(avxOff + avxSize)
	check("magic1", 448+464, uint64(le.Uint32(fp[464:])), fpXstateMagic1)
	check("extended_size", 448+468, uint64(le.Uint32(fp[468:])), size+4)
	check("xfeatures", 448+472, le.Uint64(fp[472:]), 0x7)
	check("xstate_size", 448+480, uint64(le.Uint32(fp[480:])), size)
	check("magic2", 448+int(size), uint64(le.Uint32(fp[size:])), fpXstateMagic2)
}

// TestOnAltstack: SS_ONSTACK as the kernel's on_sig_stack gives it for a
// stack pointer, the stack growing down from SP+Size.
func TestOnAltstack(t *testing.T) {
	s := Stack{SP: 0x10000, Size: 0x2000}
	for _, tc := range []struct {
		s    Stack
		sp   uint64
		want int32
	}{
		{s, 0x10000, 0},         // the lowest byte is not "on" (sp > ss_sp)
		{s, 0x10001, ssOnstack}, // just above it
		{s, 0x12000, ssOnstack}, // the top: sp - ss_sp == size
		{s, 0x12001, 0},         // above the top
		{s, 0xffff, 0},          // below
		{Stack{SP: 0x10000, Size: 0x2000, Flags: -1 << 31}, 0x11000, 0}, // SS_AUTODISARM: never "on" when it disarms itself
		{Stack{Flags: ssDisable}, 0x11000, 0},
		{Stack{SP: 0x10000}, 0x10000, 0}, // no size
	} {
		if got := onAltstack(tc.s, tc.sp); got != tc.want {
			t.Errorf("onAltstack(%+v, %#x) = %d, want %d", tc.s, tc.sp, got, tc.want)
		}
	}
}
