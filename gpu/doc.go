// Package gpu describes the hardware a provider offers: it detects NVIDIA GPUs
// through NVML or nvidia-smi, and the host's CPU, memory and disk.
//
// Detect is the entry point on a live machine: NVML first (package nvml
// dlopens libnvidia-ml.so.1, so a binary without the driver still starts), then the
// XML of `nvidia-smi -q -x`, then a CPU-only inventory with ErrNoDriver.
// ParseXML, ParseCSV, ParseQ, ParseTable, ParseList and ParseTopo read the
// output of the matching nvidia-smi command; FromFile and Parse sniff which
// one they were given. Every GPU is given a normalized ModelKey in Akash's
// naming (h100, a100, rtx4090, ...) from the embedded Catalog.
//
// An Inventory always says where it came from (Source): a detected one is
// never confused with a declared one, which exists only for demos and tests.
package gpu
