#!/usr/bin/env bash
# One short run on a machine with an NVIDIA GPU (issue #5): capture what `kiln gpu detect`
# sees through NVML and through nvidia-smi, and the raw nvidia-smi outputs, into $OUT
# (default ./gpu-capture) to commit as golden test data. Read-only on the GPU.
set -u
OUT=${OUT:-./gpu-capture}
mkdir -p "$OUT"
go build -o "$OUT/kiln" ./cmd/kiln || exit 1
"$OUT/kiln" gpu detect --output json >"$OUT/detect-nvml.json" 2>"$OUT/detect-nvml.err"
nvidia-smi -q -x >"$OUT/nvidia-smi-q-x.xml" 2>&1
nvidia-smi -q >"$OUT/nvidia-smi-q.txt" 2>&1
nvidia-smi --query-gpu=index,uuid,name,memory.total,pci.bus_id,driver_version,compute_cap,power.limit,utilization.gpu,mig.mode.current --format=csv >"$OUT/nvidia-smi-query.csv" 2>&1
nvidia-smi topo -m >"$OUT/nvidia-smi-topo.txt" 2>&1
nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1
"$OUT/kiln" gpu detect --from-file "$OUT/nvidia-smi-q-x.xml" --output json >"$OUT/detect-xml.json" 2>&1
rm -f "$OUT/kiln"
ls -l "$OUT"
