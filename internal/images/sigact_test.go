package images

import "testing"

func TestSigactionLayout(t *testing.T) {
	sigs := SigactionSignals()
	if len(sigs) != NumSigactions || NumSigactions != 62 {
		t.Fatalf("%d signals, NumSigactions %d, want 62", len(sigs), NumSigactions)
	}
	for i, sig := range sigs {
		if sig == 9 || sig == 19 {
			t.Errorf("entry %d is signal %d", i, sig)
		}
		if got := SigactionIndex(sig); got != i {
			t.Errorf("SigactionIndex(%d) = %d, want %d", sig, got, i)
		}
	}
	if sigs[0] != 1 || sigs[7] != 8 || sigs[8] != 10 || sigs[16] != 18 || sigs[17] != 20 || sigs[61] != 64 {
		t.Errorf("layout %v", sigs)
	}
	for _, sig := range []int{0, 9, 19, 65, -1} {
		if got := SigactionIndex(sig); got != -1 {
			t.Errorf("SigactionIndex(%d) = %d, want -1", sig, got)
		}
	}
}
