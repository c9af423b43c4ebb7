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
ap.add_argument("--steps", type=int, required=True, help="last step to train to")
ap.add_argument("--every", type=int, required=True, help="checkpoint every K steps")
ap.add_argument("--seed", type=int, required=True)
ap.add_argument("--hidden", type=int, required=True)
ap.add_argument("--batch", type=int, required=True)
ap.add_argument("--lr", type=float, required=True)
ap.add_argument("--train-rows", type=int, required=True)
ap.add_argument("--resume", help="checkpoint to start from")
args = ap.parse_args()

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


torch.manual_seed(args.seed)
model = MLP(args.hidden)
opt = torch.optim.SGD(model.parameters(), lr=args.lr)
if args.resume:
    start = kiln_ckpt.load(model, args.resume)
else:
    start = 0
    p = kiln_ckpt.save(model, 0)
    print("KILN_CKPT " + json.dumps({"step": 0, "file": p}), flush=True)
for step in range(start + 1, args.steps + 1):
    g = torch.Generator().manual_seed(args.seed * 1000003 + step)
    idx = torch.randint(len(Y), (args.batch,), generator=g)
    loss = F.cross_entropy(model(X[idx]), Y[idx])
    opt.zero_grad()
    loss.backward()
    opt.step()
    if step % args.every == 0 or step == args.steps:
        p = kiln_ckpt.save(model, step)
        print("KILN_CKPT " + json.dumps({"step": step, "file": p, "loss": loss.item()}), flush=True)
