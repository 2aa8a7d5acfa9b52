package support

import "testing"

func TestObjectsUnique(t *testing.T) {
	seen := map[Kind]bool{}
	dumpedDone := false
	for _, o := range Objects {
		if seen[o.Kind] {
			t.Errorf("kind %s listed twice", o.Kind)
		}
		seen[o.Kind] = true
		if o.Label == "" || o.Detail == "" {
			t.Errorf("kind %s: empty label or detail", o.Kind)
		}
		if opt, ok := OptionOf(o.Kind); ok && (!o.Dumped || opt.Option == "" || opt.Advice == "") {
			t.Errorf("kind %s: kept with %s, so dumped, with advice for dumps without it", o.Kind, opt.Option)
		}
		if !o.Dumped {
			dumpedDone = true
		} else if dumpedDone {
			t.Errorf("kind %s: dumped kinds must come first", o.Kind)
		}
	}
	if got := Advice(FileLocks); got != "release the lock before dumping, or dump and restore with --file-locks" {
		t.Errorf("Advice(FileLocks) = %q", got)
	}
}

func TestRefusalText(t *testing.T) {
	r := &Refusal{Pid: 12, Comm: "prog", Where: "fd 5", Object: "TCP 127.0.0.1:41234 -> 127.0.0.1:10000", Kind: TCPSockets}
	want := "task 12 (prog) fd 5: TCP 127.0.0.1:41234 -> 127.0.0.1:10000: gockpt dumps established TCP connections only with --tcp-established; end the connection before dumping, or dump and restore with --tcp-established"
	if got := r.Error(); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	r = &Refusal{Pid: 12, Comm: "prog", Where: "fd 3", Object: "/tmp/x", Detail: "a POSIX write lock on bytes 0-99", Kind: FileLocks}
	want = "task 12 (prog) fd 3: /tmp/x: a POSIX write lock on bytes 0-99: gockpt dumps file locks only with --file-locks; release the lock before dumping, or dump and restore with --file-locks"
	if got := r.Error(); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	r = &Refusal{Pid: 12, Comm: "prog", Object: "net namespace net:[4026532000]", Kind: Namespaces, Advice: "run gockpt inside it (nsenter --target 12 --net)"}
	want = "task 12 (prog): net namespace net:[4026532000]: gockpt does not dump namespaces other than UTS; run gockpt inside it (nsenter --target 12 --net)"
	if got := r.Error(); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}
