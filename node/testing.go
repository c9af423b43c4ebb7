package node

import (
	"os"
	"time"
)

// TempHome returns a fresh directory removed when the test ends. Unlike t.TempDir it
// tolerates files CometBFT's background routines write while the node shuts down.
func TempHome(tb interface {
	Helper()
	Fatal(...any)
	Cleanup(func())
}) string {
	tb.Helper()
	d, err := os.MkdirTemp("", "kiln-home-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		for i := 0; i < 5 && os.RemoveAll(d) != nil; i++ {
			time.Sleep(100 * time.Millisecond)
		}
	})
	return d
}
