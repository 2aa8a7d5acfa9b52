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
		if !o.Dumped {
			dumpedDone = true
		} else if dumpedDone {
			t.Errorf("kind %s: dumped kinds must come first", o.Kind)
		}
	}
	if got := Advice(FileLocks); got != "release the lock before dumping" {
		t.Errorf("Advice(FileLocks) = %q", got)
	}
}
