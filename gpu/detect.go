package gpu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"time"
)

// Options configure Detect. The zero value detects the real host.
type Options struct {
	// NVML is the NVML implementation to use; nil means the real library
	// (dlopened at Init). Tests pass a fake (gpu/nvml/nvmltest).
	NVML NVML
	// SkipNVML goes straight to nvidia-smi.
	SkipNVML bool
	// NVIDIASMI is the nvidia-smi executable; "" looks "nvidia-smi" up on PATH.
	// "-" disables the nvidia-smi fallback.
	NVIDIASMI string
	// SMITimeout bounds each nvidia-smi run; 0 means 30s (a healthy driver
	// answers -q -x in well under a second even with 8 GPUs; a hung one never does).
	SMITimeout time.Duration
	// DiskPath is the filesystem whose size is reported as DiskBytes; "" means "/".
	DiskPath string
	// Logger gets one line per fallback taken; nil discards.
	Logger *slog.Logger
}

// Detect inventories this host: GPUs through NVML, else through
// `nvidia-smi -q -x` (plus `nvidia-smi topo -m` for the topology), plus CPU,
// memory and disk from the OS. It never panics for want of a driver.
//
// With no usable driver it returns a CPU-only inventory (Source SourceOS)
// together with an error wrapping ErrNoDriver: callers that accept CPU-only
// providers check errors.Is(err, ErrNoDriver) and use the inventory. Any other
// error comes with a zero Inventory.
func Detect(ctx context.Context, opts Options) (Inventory, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var (
		inv   Inventory
		found bool
		notes []string
	)
	if !opts.SkipNVML {
		lib := opts.NVML
		if lib == nil {
			lib = defaultNVML()
		}
		i, err := detectNVML(ctx, lib)
		switch {
		case err == nil:
			inv, found = i, true
		case ctx.Err() != nil:
			return Inventory{}, fmt.Errorf("detect GPUs: %w", ctx.Err())
		default:
			log.Info("NVML unavailable, trying nvidia-smi", "err", err)
			notes = append(notes, err.Error())
		}
	}
	if !found && opts.NVIDIASMI != "-" {
		i, err := detectSMI(ctx, opts)
		switch {
		case err == nil:
			inv, found = i, true
		case ctx.Err() != nil:
			return Inventory{}, fmt.Errorf("detect GPUs: %w", ctx.Err())
		default:
			log.Info("nvidia-smi unavailable, CPU only", "err", err)
			notes = append(notes, err.Error())
		}
	}
	if found && inv.Topology == nil && opts.NVIDIASMI != "-" && len(inv.GPUs) > 1 {
		// Topology matters only between GPUs; NVML's per-pair topology calls
		// need both handles anyway, so ask nvidia-smi for the whole matrix.
		if t, err := smiTopology(ctx, opts); err == nil {
			inv.Topology = t
		} else {
			inv.Notes = append(inv.Notes, fmt.Sprintf("topology: %v", err))
		}
	}
	diskPath := opts.DiskPath
	if diskPath == "" {
		diskPath = "/"
	}
	var hostNotes []string
	inv.CPU, inv.MemoryBytes, inv.DiskBytes, hostNotes = readHost(diskPath)
	inv.Notes = append(inv.Notes, hostNotes...)
	if found {
		return inv, nil
	}
	inv.Source = SourceOS
	inv.GPUs = nil
	inv.Notes = append([]string{ErrNoDriver.Error()}, append(notes, inv.Notes...)...)
	return inv, fmt.Errorf("detect GPUs: %w", ErrNoDriver)
}

// smiPath resolves the nvidia-smi executable, or fails with ErrNoDriver.
func smiPath(opts Options) (string, error) {
	name := opts.NVIDIASMI
	if name == "" {
		name = "nvidia-smi"
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("nvidia-smi: %w (%v)", ErrNoDriver, err)
	}
	return p, nil
}

// runSMI runs nvidia-smi with args under the configured timeout.
func runSMI(ctx context.Context, opts Options, args ...string) ([]byte, error) {
	p, err := smiPath(opts)
	if err != nil {
		return nil, err
	}
	timeout := opts.SMITimeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, p, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := bytes.TrimSpace(stderr.Bytes())
		if len(msg) == 0 {
			// nvidia-smi prints "NVIDIA-SMI has failed because it couldn't
			// communicate with the NVIDIA driver" on stdout.
			msg = bytes.TrimSpace(stdout.Bytes())
		}
		if len(msg) > 300 {
			msg = msg[:300]
		}
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) && bytes.Contains(msg, []byte("driver")) {
			return nil, fmt.Errorf("run %s %v: %w: %s", p, args, ErrNoDriver, msg)
		}
		return nil, fmt.Errorf("run %s %v: %w: %s", p, args, err, msg)
	}
	return stdout.Bytes(), nil
}

func detectSMI(ctx context.Context, opts Options) (Inventory, error) {
	out, err := runSMI(ctx, opts, "-q", "-x")
	if err != nil {
		return Inventory{}, err
	}
	inv, err := ParseXML(bytes.NewReader(out))
	if err != nil {
		return Inventory{}, fmt.Errorf("nvidia-smi -q -x: %w", err)
	}
	return inv, nil
}

func smiTopology(ctx context.Context, opts Options) (*Topology, error) {
	out, err := runSMI(ctx, opts, "topo", "-m")
	if err != nil {
		return nil, err
	}
	return ParseTopo(bytes.NewReader(out))
}

// Declare returns a declared inventory of count GPUs of the catalogue model
// key on a host with the given CPU, memory and disk: for demos and
// simulations only. Its Source is SourceDeclared and every GPU's UUID says
// "declared", so it can never pass for detected hardware.
func Declare(key string, count int, cpu CPUInfo, memoryBytes, diskBytes uint64) (Inventory, error) {
	inv := Inventory{Source: SourceDeclared, CPU: cpu, MemoryBytes: memoryBytes, DiskBytes: diskBytes}
	if count < 0 {
		return Inventory{}, &FieldError{Field: "count", Value: fmt.Sprint(count), Msg: "must be >= 0"}
	}
	if count == 0 {
		return inv, nil
	}
	m, ok := LookupModel(key)
	if !ok {
		return Inventory{}, &FieldError{Field: "model", Value: key, Msg: "not in the GPU catalogue"}
	}
	v := m.Variants[0]
	for i := 0; i < count; i++ {
		inv.GPUs = append(inv.GPUs, GPU{
			Index:             i,
			UUID:              fmt.Sprintf("declared-%s-%d", m.Key, i),
			Name:              m.Names[0],
			ModelKey:          m.Key,
			Vendor:            m.Vendor,
			Architecture:      m.Architecture,
			MemoryMiB:         uint64(v.MemoryGiB) * 1024,
			Interface:         v.Interface,
			ComputeCapability: m.ComputeCapability,
		})
	}
	inv.Notes = []string{"declared inventory: not detected, for demos and simulations only"}
	return inv, nil
}
