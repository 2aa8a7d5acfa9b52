package dump

import (
	"fmt"
	"os"
	"testing"

	"github.com/gockpt/gockpt/internal/keeper"
)

// keeperEnv makes this test binary run the memory tracker keeper: a
// pre-dump with TrackMem starts KeeperArgs ({os.Args[0]}) with this
// variable set, as internal/restore's tests do.
const keeperEnv = "GOCKPT_TEST_KEEPER"

func TestMain(m *testing.M) {
	if os.Getenv(keeperEnv) == "1" {
		// argv: binary, then what keeper.Start appends: --addr ADDR.
		addr := ""
		for i, a := range os.Args {
			if a == "--addr" && i+1 < len(os.Args) {
				addr = os.Args[i+1]
			}
		}
		if err := keeper.Serve(addr, os.NewFile(3, "ready")); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}
