"""Multi-process training under ``torchrun`` (multi-GPU, multi-node; gloo on CPU, nccl on GPU).

Every rank builds the same recipe from the same seed (identical initial weights), draws the same
*global* batch and keeps its own shard; gradients are averaged across ranks by all-reduce hooks on
every parameter — what DistributedDataParallel does, but independent of how a recipe routes its
forward passes (GAN recipes call several sub-networks and several backward passes per step).
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def backend_for(device: str) -> str:
    """nccl only for CUDA tensors; gloo for CPU training, even on a machine that has CUDA."""
    return "nccl" if device.startswith("cuda") else "gloo"


def setup(device: str = "cpu") -> DistInfo:
    """Initialise the process group when launched by torchrun (backend from the resolved training
    ``device``); a no-op for a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    import torch
    import torch.distributed as dist

    backend = backend_for(device)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    info = DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    if backend == "nccl":
        torch.cuda.set_device(info.local_rank)
    return info


def average_gradients(modules, info: DistInfo) -> None:
    """Broadcast rank 0's weights, then all-reduce (mean) each gradient as soon as it is accumulated."""
    if info.world <= 1:
        return
    import torch.distributed as dist

    for module in modules:
        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor.data, src=0)
        for p in module.parameters():
            if p.requires_grad:
                p.register_post_accumulate_grad_hook(_make_hook(info.world))


def _make_hook(world: int):
    import torch.distributed as dist

    def hook(param) -> None:
        dist.all_reduce(param.grad)
        param.grad /= world

    return hook


def mean_across_ranks(values: dict[str, float], info: DistInfo) -> dict[str, float]:
    """Average logged losses over ranks so the log shows the global-batch loss."""
    if info.world <= 1:
        return values
    import torch
    import torch.distributed as dist

    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64)
    dist.all_reduce(t)
    return {k: float(v) / info.world for k, v in zip(keys, t.tolist(), strict=True)}


def shard(batch, info: DistInfo):
    """This rank's slice of a global batch (a dataclass of arrays with the batch first)."""
    if info.world <= 1:
        return batch
    import dataclasses

    n = len(batch.target) // info.world
    sl = slice(info.rank * n, (info.rank + 1) * n)
    level = getattr(batch, "BATCH_LEVEL", ())
    parts = {f.name: getattr(batch, f.name)[sl] for f in dataclasses.fields(batch)
             if f.name not in level and getattr(batch, f.name) is not None}
    if "shard_has" in level:  # every rank sees what every shard holds: the same pair choice everywhere
        parts["shard_has"] = batch.has[:n * info.world].reshape(info.world, n, -1)
    if "shard_offset" in level:  # per-sample random draws are made for the global batch, then sliced
        parts["shard_offset"] = info.rank * n
    if "global_mask_area" in level:  # masked means over the global batch (the one-process loss)
        parts["global_mask_area"] = batch.mask[:n * info.world].reshape(n * info.world, -1).sum(axis=1)
    return dataclasses.replace(batch, **parts)


def weights_in_sync(modules, info: DistInfo) -> bool:
    """True when every rank holds exactly rank 0's parameters and buffers (what the gradient all-reduce
    promises); checked once at the end of a run, so a silent divergence shows in summary.json."""
    if info.world <= 1:
        return True
    import torch
    import torch.distributed as dist

    flat = torch.cat([t.detach().flatten().double() for m in modules for t in [*m.parameters(), *m.buffers()]])
    reference = flat.clone()
    dist.broadcast(reference, src=0)
    mismatch = torch.tensor([0.0 if torch.equal(flat, reference) else 1.0], dtype=torch.float64, device=flat.device)
    dist.all_reduce(mismatch)
    return float(mismatch.item()) == 0.0


def cleanup(info: DistInfo) -> None:
    if info.world > 1:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
