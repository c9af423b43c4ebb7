# All-reduce bandwidth over two paths between the same ranks, interleaved.
# Each rank runs this once; it builds two gloo process groups that differ only
# in the interface their connections use (the overlay's TUN, the link's veth)
# and times the same all_reduce on each, round after round, so that both see
# the same load on the machine. Rank 0 prints one JSON line.
import argparse, datetime, json, os, statistics, sys, time

import torch
import torch.distributed as dist

ap = argparse.ArgumentParser()
ap.add_argument("--bytes", type=int, required=True)
ap.add_argument("--iters", type=int, required=True)
ap.add_argument("--rounds", type=int, required=True)
ap.add_argument("--direct-if", required=True)
ap.add_argument("--overlay-if", required=True)
a = ap.parse_args()

rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
timeout = datetime.timedelta(seconds=120)
store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world, rank == 0, timeout)


def group(name, ifname):
    opts = dist.ProcessGroupGloo._Options()
    opts._devices = [dist.ProcessGroupGloo.create_device(interface=ifname)]
    opts._timeout = timeout
    return dist.ProcessGroupGloo(dist.PrefixStore(name, store), rank, world, opts)


groups = {"direct": group("direct", a.direct_if), "overlay": group("overlay", a.overlay_if)}
t = torch.full((a.bytes // 4,), float(rank + 1), dtype=torch.float32)


def timed(pg):
    """Runs iters all_reduces on pg; returns the slowest rank's seconds."""
    pg.barrier().wait()
    t0 = time.perf_counter()
    for _ in range(a.iters):
        pg.allreduce([t]).wait()
    m = torch.tensor([time.perf_counter() - t0], dtype=torch.float64)
    o = dist.AllreduceOptions()
    o.reduceOp = dist.ReduceOp.MAX
    groups["direct"].allreduce([m], o).wait()
    return m.item()


# Warm-up (connections, buffers), and proof that both paths carry the data:
# the sum of ranks 1..world, then that sum times world.
total = world * (world + 1) / 2
for name, want in (("direct", total), ("overlay", total * world)):
    groups[name].allreduce([t]).wait()
    if t.min().item() != want or t.max().item() != want:
        sys.exit(f"all_reduce over {name}: got {t.min().item()}..{t.max().item()}, want {want}")

secs = {"direct": [], "overlay": []}
for r in range(a.rounds):
    # Alternate which path goes first, so neither always runs on a warmer machine.
    for name in (("direct", "overlay") if r % 2 == 0 else ("overlay", "direct")):
        t.fill_(1.0)
        secs[name].append(timed(groups[name]))

if rank == 0:
    print(json.dumps(secs), flush=True)
# NB: every rank waits for the others, then leaves without running the
# process groups' destructors, which may abort ("terminate called without an
# active exception") while gloo's threads still run.
groups["direct"].barrier().wait()
sys.stdout.flush()
os._exit(0)
