//go:build !cgo || !linux

package nvml

// Available is false: loading NVML needs cgo (dlopen) on Linux.
const Available = false

// DefaultLibrary is the driver's NVML library.
const DefaultLibrary = "libnvidia-ml.so.1"

// New returns an NVML whose Init always fails: this build cannot load it.
func New() Interface { return unavailable{} }

// NewAt is New: this build cannot load a library.
func NewAt(string) Interface { return unavailable{} }

type unavailable struct{}

func (unavailable) Init() Return                              { return ErrorLibraryNotFound }
func (unavailable) Shutdown() Return                          { return ErrorUninitialized }
func (unavailable) SystemGetDriverVersion() (string, Return)  { return "", ErrorUninitialized }
func (unavailable) SystemGetCudaDriverVersion() (int, Return) { return 0, ErrorUninitialized }
func (unavailable) DeviceGetCount() (int, Return)             { return 0, ErrorUninitialized }
func (unavailable) DeviceGetHandleByIndex(int) (Device, Return) {
	return nil, ErrorUninitialized
}
