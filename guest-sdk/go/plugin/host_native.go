//go:build !wasip1

package plugin

import (
	"fmt"
	"math/rand/v2"
	"os"
	"time"
)

// Natively (go test) there is no agent: the log goes to stderr.
func hostLog(level Level, message string) {
	fmt.Fprintf(os.Stderr, "[%d] %s\n", level, message)
}

func hostNow() uint64    { return uint64(time.Now().UnixNano()) }
func hostRandom() uint64 { return rand.Uint64() }
