"""Kiln's reference PyTorch training run: an MLP on 8x8 digits, checkpointed with kiln_ckpt.

Deterministic on one build: torch.use_deterministic_algorithms, one thread, the initial
weights from --seed, and the minibatch of step t drawn from a generator seeded with
(seed, t) alone, so a verifier can replay any segment from its starting checkpoint.

Data-parallel: with WORLD_SIZE > 1 in the environment (torch.distributed's MASTER_ADDR,
MASTER_PORT, RANK, LOCAL_RANK), --shards must equal WORLD_SIZE. Every rank draws the
same global minibatch, takes its contiguous part (rank r of --shards), computes the
gradient of sum(loss over its part) / batch, and the parts' gradients are gathered and
summed in rank order on every rank (all_gather, not all_reduce: the order of the sum is
fixed, so every rank holds identical weights, and a single process with the same --shards
computes the same bits by looping over the parts). Every rank writes the checkpoints (the
same bytes), so the chain outlives any one rank: with --chain DIR (each rank its own copy of
the chain so far, possibly none) the ranks start from the longest chain among them, and a
rank with a shorter one adopts it (printed as KILN_ADOPT) before training goes on.
Backend: gloo on CPU; NCCL on CUDA when every rank has a GPU (KILN_DIST_BACKEND=gloo or
nccl forces one). init_process_group's timeout is KILN_DIST_TIMEOUT seconds (default 60),
so a rank that dies or hangs makes the others fail instead of waiting for ever.
"""
import argparse
import datetime
import hashlib
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kiln_ckpt  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--data", required=True)
ap.add_argument("--steps", type=int, help="last step to train to")
ap.add_argument("--every", type=int, help="checkpoint every K steps")
ap.add_argument("--seed", type=int, required=True)
ap.add_argument("--hidden", type=int, required=True)
ap.add_argument("--batch", type=int, required=True)
ap.add_argument("--lr", type=float, required=True)
ap.add_argument("--train-rows", type=int, required=True)
ap.add_argument("--shards", type=int, default=1, help="split each batch into N parts summed in order (an N-rank run's math)")
ap.add_argument("--resume", help="checkpoint to start from (a single process)")
ap.add_argument("--chain", help="directory of this rank's checkpoint chain so far, in name order (a data-parallel resume)")
ap.add_argument("--replay", help='JSON list of {"resume": FILE or "", "to": STEP}: replay each segment (a verifier)')
args = ap.parse_args()
if args.replay is None and (args.steps is None or args.every is None):
    ap.error("--steps and --every are required unless --replay")
if not 1 <= args.shards <= args.batch:
    ap.error("--shards %d: must be 1 to --batch (%d)" % (args.shards, args.batch))

world = int(os.environ.get("WORLD_SIZE", "1"))
rank = int(os.environ.get("RANK", "0"))
if world > 1 and args.replay is not None:
    ap.error("--replay is single-process (a verifier); WORLD_SIZE is %d" % world)
if world > 1 and args.resume is not None:
    ap.error("--resume is single-process; a data-parallel run resumes with --chain (WORLD_SIZE is %d)" % world)
if args.chain is not None and (args.resume is not None or args.replay is not None):
    ap.error("--chain: not with --resume or --replay")
if world > 1 and args.shards != world:
    ap.error("--shards %d: a data-parallel run needs --shards = WORLD_SIZE (%d)" % (args.shards, world))

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS, where CUDA is
torch.use_deterministic_algorithms(True)
torch.set_num_threads(1)

with open(args.data, "rb") as f:
    raw = f.read()
data = np.loadtxt(args.data, delimiter=",", dtype=np.float32, ndmin=2)
X = torch.from_numpy(data[: args.train_rows, :64] / 16)
Y = torch.from_numpy(data[: args.train_rows, 64]).long()
device = torch.device("cpu")
backend = "none"
grad_group = None

if world > 1:
    import torch.distributed as dist

    timeout = datetime.timedelta(seconds=float(os.environ.get("KILN_DIST_TIMEOUT", "60")))
    # NB: the control group is always gloo (CPU tensors): it carries the job digest, the
    # start step and the backend vote before any GPU is touched.
    dist.init_process_group("gloo", init_method="env://", world_size=world, rank=rank, timeout=timeout)
    want = os.environ.get("KILN_DIST_BACKEND", "auto")
    if want not in ("auto", "gloo", "nccl"):
        sys.exit("KILN_DIST_BACKEND %r: must be auto, gloo or nccl" % want)
    local = int(os.environ.get("LOCAL_RANK", "0"))
    has_gpu = torch.tensor([1 if want != "gloo" and torch.cuda.is_available() and torch.cuda.device_count() > local else 0])
    dist.all_reduce(has_gpu, op=dist.ReduceOp.MIN)
    if want == "nccl" and not has_gpu.item():
        sys.exit("KILN_DIST_BACKEND=nccl: some rank has no CUDA device for its LOCAL_RANK")
    backend = "gloo"
    if has_gpu.item():
        backend = "nccl"
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
        grad_group = dist.new_group(backend="nccl", timeout=timeout)
        X, Y = X.to(device), Y.to(device)
    # Every rank must train the same job: rank 0's digest of the data and arguments.
    job = hashlib.sha256(raw + json.dumps([args.seed, args.hidden, args.batch, args.lr, args.train_rows, args.shards, args.steps, args.every]).encode()).digest()
    mine = torch.tensor([int.from_bytes(job[i:i + 8], "little", signed=True) for i in range(0, 32, 8)], dtype=torch.int64)
    theirs = mine.clone()
    dist.broadcast(theirs, 0)
    if not torch.equal(mine, theirs):
        sys.exit("rank %d: the job (data or parameters) differs from rank 0's" % rank)


class MLP(torch.nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.fc1 = torch.nn.Linear(64, hidden)
        self.fc2 = torch.nn.Linear(hidden, 10)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


def fresh():
    """The initial model: the same weights for the same seed, every time."""
    torch.manual_seed(args.seed)
    return MLP(args.hidden)


def emit(kind, ev):
    print(kind + " " + json.dumps(ev), flush=True)


def report(step, path, loss=None):
    ev = {"step": step, "file": path}
    if loss is not None:
        ev["loss"] = loss
    emit("KILN_CKPT", ev)


def weights_sha256(model):
    """SHA-256 of the weights' float32 values in checkpoint order (a checkpoint's body)."""
    h = hashlib.sha256()
    for v in model.state_dict().values():
        h.update(v.detach().to(torch.float32).contiguous().cpu().numpy().astype("<f4").tobytes())
    return h.hexdigest()


def part(r):
    """Rank r's contiguous part of a batch: sizes differ by at most one."""
    return r * args.batch // args.shards, (r + 1) * args.batch // args.shards


def part_grad(model, idx, r):
    """The flat gradient of sum(loss over part r of idx) / batch, with that loss last."""
    lo, hi = part(r)
    i = idx[lo:hi].to(X.device)
    loss = F.cross_entropy(model(X[i]), Y[i], reduction="sum") / args.batch
    grads = torch.autograd.grad(loss, list(model.parameters()))
    return torch.cat([g.reshape(-1) for g in grads] + [loss.detach().reshape(1)])


def sharded_step(model, idx):
    """One SGD step on the sum, in part order, of the parts' gradients; returns the loss."""
    if world > 1:
        mine = part_grad(model, idx, rank)
        parts = [torch.empty_like(mine) for _ in range(world)]
        dist.all_gather(parts, mine, group=grad_group)
    else:
        parts = [part_grad(model, idx, r) for r in range(args.shards)]
    total = parts[0].clone()
    for p in parts[1:]:
        total += p
    off = 0
    with torch.no_grad():
        for w in model.parameters():
            n = w.numel()
            w.add_(total[off:off + n].view_as(w), alpha=-args.lr)
            off += n
    return total[off].item()


def train(model, start, to, every):
    """SGD steps start+1..to; the minibatch of step t depends on (seed, t) alone."""
    opt = torch.optim.SGD(model.parameters(), lr=args.lr)
    loss = None
    for step in range(start + 1, to + 1):
        g = torch.Generator().manual_seed(args.seed * 1000003 + step)
        idx = torch.randint(len(Y), (args.batch,), generator=g)
        if args.shards > 1:
            loss = sharded_step(model, idx)
        else:
            # NB: the original single-part step, unchanged, so jobs from before shards
            # replay to the same bits.
            out = F.cross_entropy(model(X[idx]), Y[idx])
            opt.zero_grad()
            out.backward()
            opt.step()
            loss = out.item()
        if step % every == 0 or step == to:
            report(step, kiln_ckpt.save(model, step), loss)
    return loss


def own_chain():
    """The files of --chain, in name order ([] without it)."""
    if args.chain is None:
        return []
    return [os.path.join(args.chain, n) for n in sorted(os.listdir(args.chain)) if n.endswith(".kckpt")]


def longest_chain(own):
    """The longest of the ranks' chains (ties: the lowest rank's), as files: own where it
    is that long, else the longest one's bytes, received and written beside this rank's
    checkpoints and reported as KILN_ADOPT."""
    if world == 1:
        return own
    lens = [torch.zeros(1, dtype=torch.int64) for _ in range(world)]
    dist.all_gather(lens, torch.tensor([len(own)], dtype=torch.int64))
    lens = [int(n.item()) for n in lens]
    src = lens.index(max(lens))
    if min(lens) == lens[src]:
        return own
    data = []
    if rank == src:
        for path in own:
            with open(path, "rb") as f:
                data.append(f.read())
    sizes = torch.tensor([len(b) for b in data] if rank == src else [0] * lens[src], dtype=torch.int64)
    dist.broadcast(sizes, src)
    if rank == src:
        body = torch.from_numpy(np.frombuffer(b"".join(data), dtype=np.uint8).copy())
    else:
        body = torch.empty(int(sizes.sum().item()), dtype=torch.uint8)
    dist.broadcast(body, src)
    if len(own) == lens[src]:
        return own
    raw, off, got = body.numpy().tobytes(), 0, []
    for i, n in enumerate(sizes.tolist()):
        path = os.path.join(kiln_ckpt._dir(), "adopt-%06d.kckpt" % i)
        with open(path, "wb") as f:
            f.write(raw[off:off + n])
        got.append(path)
        off += n
    emit("KILN_ADOPT", {"files": got, "from_rank": src})
    return got


def start_state(resume):
    """The model and step to start from: the resumed checkpoint (--resume, or the last of
    the longest chain of the ranks), or the seed's initial weights; rank 0's are
    broadcast, so every rank starts from identical weights (and writes identical
    checkpoints)."""
    model = fresh().to(device)
    start = 0
    if not resume:
        chain = longest_chain(own_chain())
        resume = chain[-1] if chain else None
    if resume:
        start = kiln_ckpt.load(model, resume)
    if world > 1:
        s = torch.tensor([start], dtype=torch.int64)
        dist.broadcast(s, 0)
        start = int(s.item())
        with torch.no_grad():
            for w in model.parameters():
                c = w.detach().cpu().clone()
                dist.broadcast(c, 0)
                w.copy_(c.to(device))
    if start == 0 and not resume:
        report(0, kiln_ckpt.save(model, 0))
    return model, start


def segment(resume, to, every):
    model, start = start_state(resume)
    loss = None
    if to > start:
        loss = train(model, start, to, every)
    emit("KILN_FINAL", {"rank": rank, "world_size": world, "backend": backend, "start": start, "steps": max(start, to),
                        "loss": loss, "weights_sha256": weights_sha256(model)})


if args.replay is not None:
    for r in json.loads(args.replay):
        segment(r["resume"], r["to"], max(1, r["to"]))
else:
    segment(args.resume, args.steps, args.every)
    if world > 1:
        dist.barrier()  # NB: nobody leaves while another rank still needs its sockets
        dist.destroy_process_group()
