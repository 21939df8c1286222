# Copyright (c) gpulab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The GPU smoke test of gpulab.cluster (role gpu, tag gpu_smoke): DistributedDataParallel across the replicas of a
PyTorchJob. The training operator sets MASTER_ADDR, MASTER_PORT, WORLD_SIZE and RANK.

Each replica fits the same small linear model on its own shard of synthetic data; DDP averages the gradients, so at
the end every replica must hold the same weights, close to the true ones, and an all-reduce of rank+1 must give
world*(world+1)/2. The last line says ok or FAILED, and the exit status follows it. Runs on CPUs too (gloo), which is
how it can be tried without a GPU:  torchrun --nproc-per-node 2 ddp_smoke.py
"""
import datetime
import os
import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

FEATURES = 16
STEPS = 300


def main():
    cuda = torch.cuda.is_available()
    # bounded, below the gpu role's gpu_smoke_timeout (900 s): a replica that dies does not leave the other waiting
    # for torch's default (30 minutes with gloo); long enough for replicas that start minutes apart (image pulls)
    dist.init_process_group(backend="nccl" if cuda else "gloo", timeout=datetime.timedelta(minutes=10))
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda", 0) if cuda else torch.device("cpu")
    model = torch.nn.Linear(FEATURES, 1).to(device)
    ddp = DistributedDataParallel(model, device_ids=[0] if cuda else None)
    optimizer = torch.optim.SGD(ddp.parameters(), lr=0.05)
    shard = torch.Generator().manual_seed(1000 + rank)
    true_weights = torch.linspace(-1.0, 1.0, FEATURES)
    loss = None
    for _step in range(STEPS):
        x = torch.randn(64, FEATURES, generator=shard)
        y = x @ true_weights + 0.5
        loss = torch.nn.functional.mse_loss(ddp(x.to(device)).squeeze(1), y.to(device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    gathered = [torch.zeros_like(flat) for _replica in range(world)]
    dist.all_gather(gathered, flat)
    same = all(torch.allclose(gathered[0], other) for other in gathered)
    total = torch.tensor([float(rank + 1)], device=device)
    dist.all_reduce(total)
    expected = world * (world + 1) / 2.0
    error = (model.weight.detach().cpu().flatten() - true_weights).abs().max().item()
    ok = same and abs(total.item() - expected) < 1e-6 and error < 0.05 and world >= 2
    fields = (rank, world, dist.get_backend(), device, total.item(), expected, loss.item(), error, same,
              "ok" if ok else "FAILED")
    print("GPULAB-DDP-RESULT rank=%d world=%d backend=%s device=%s sum=%.1f expected=%.1f loss=%.5f "
          "weight_error=%.5f weights_equal=%s %s" % fields, flush=True)
    # every replica reaches the end before any leaves (rank 0 holds the rendezvous store)
    dist.barrier()
    dist.destroy_process_group()
    return 0 if ok else 1


if __name__ == "__main__":
    STATUS = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Leave without the interpreter's finalization: with gloo, tearing down torch's C++ threads there aborts the
    # process now and then ("terminate called without an active exception", 1 run in 4 on a 2-core machine, torch
    # 2.14), which would fail the replica after it has reported; everything is finished and flushed by now.
    os._exit(STATUS)
