package daemon

// The executors the daemon's tests name in [executor] kind; kiln's binary
// registers them in cmd/kiln.
import (
	_ "github.com/kiln-network/kiln/provider/executor/docker"
	_ "github.com/kiln-network/kiln/provider/executor/process"
)
