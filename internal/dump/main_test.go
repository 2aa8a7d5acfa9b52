package dump

import (
	"os"
	"testing"

	"github.com/gockpt/gockpt/internal/testproc"
)

// TestMain lets this test binary serve as the memory tracker keeper that
// pre-dumps start (testproc.KeeperArgs).
func TestMain(m *testing.M) {
	testproc.ServeKeeperIfAsked()
	os.Exit(m.Run())
}
