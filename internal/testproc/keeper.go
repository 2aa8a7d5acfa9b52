package testproc

import (
	"fmt"
	"os"

	"github.com/gockpt/gockpt/internal/keeper"
)

// keeperEnv makes a test binary run the memory tracker keeper instead of
// its tests.
const keeperEnv = "GOCKPT_TEST_KEEPER"

// KeeperArgs is what tests give dump.Options.KeeperArgs: this test binary,
// told by its environment to be a keeper (see ServeKeeperIfAsked).
func KeeperArgs() []string {
	return []string{"/usr/bin/env", keeperEnv + "=1", os.Args[0]}
}

// ServeKeeperIfAsked runs the keeper and exits when this test binary was
// started by KeeperArgs; call it first in TestMain.
func ServeKeeperIfAsked() {
	if os.Getenv(keeperEnv) != "1" {
		return
	}
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
