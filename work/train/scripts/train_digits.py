"""Kiln's reference PyTorch training run: an MLP on 8x8 digits, checkpointed with kiln_ckpt.

Deterministic on one build: torch.use_deterministic_algorithms, one thread, the initial
weights from --seed, and the minibatch of step t drawn from a generator seeded with
(seed, t) alone, so a verifier can replay any segment from its starting checkpoint.
"""
import argparse
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
ap.add_argument("--resume", help="checkpoint to start from")
ap.add_argument("--replay", help='JSON list of {"resume": FILE or "", "to": STEP}: replay each segment (a verifier)')
args = ap.parse_args()
if args.replay is None and (args.steps is None or args.every is None):
    ap.error("--steps and --every are required unless --replay")

torch.use_deterministic_algorithms(True)
torch.set_num_threads(1)

data = np.loadtxt(args.data, delimiter=",", dtype=np.float32, ndmin=2)
X = torch.from_numpy(data[: args.train_rows, :64] / 16)
Y = torch.from_numpy(data[: args.train_rows, 64]).long()


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


def report(step, path, loss=None):
    ev = {"step": step, "file": path}
    if loss is not None:
        ev["loss"] = loss
    print("KILN_CKPT " + json.dumps(ev), flush=True)


def train(model, start, to, every):
    """SGD steps start+1..to; the minibatch of step t depends on (seed, t) alone."""
    opt = torch.optim.SGD(model.parameters(), lr=args.lr)
    for step in range(start + 1, to + 1):
        g = torch.Generator().manual_seed(args.seed * 1000003 + step)
        idx = torch.randint(len(Y), (args.batch,), generator=g)
        loss = F.cross_entropy(model(X[idx]), Y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % every == 0 or step == to:
            report(step, kiln_ckpt.save(model, step), loss.item())


def segment(resume, to, every):
    model = fresh()
    if resume:
        start = kiln_ckpt.load(model, resume)
    else:
        start = 0
        report(0, kiln_ckpt.save(model, 0))
    if to > start:
        train(model, start, to, every)


if args.replay is not None:
    for r in json.loads(args.replay):
        segment(r["resume"], r["to"], max(1, r["to"]))
else:
    segment(args.resume, args.steps, args.every)
