"""A training task that records what the loop does with it, for the tests (nothing of it is in wavegen).

`Recording` wraps a task: each training item also carries its index, and every batch the loop hands to
`loss` is noted (its item and crop indices), so is the model, and, after every backward pass, each
parameter's accumulated gradient. As a script it trains the WaveNet under torch.distributed.run and
writes one record per process::

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/recorded_train.py \\
        --config configs/tiny.toml --data DATASET --out RUN --set train.steps=4

RUN/ranks/rank-N.json: rank, node (torchrun's GROUP_RANK), world, step, the crop indices and items of
the first batches it read, and the sha256 of its final weights (every process must end with the same ones).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch


class _Indexed(torch.utils.data.Dataset):
    """Items of `base`, each with its own index (survives loader worker processes, unlike a side list)."""

    def __init__(self, base: torch.utils.data.Dataset):
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {**self.base[index], "index": torch.tensor(index)}


class Recording:
    """Any task, unchanged, but watched: `batches` (what loss() saw), `model`, `grads` (see the docstring)."""

    def __init__(self, task: Any):
        self.task = task
        self.batches: list[dict[str, list[int]]] = []
        self.grads: dict[str, torch.Tensor] = {}  # the latest accumulated gradient of each parameter
        self.model: torch.nn.Module | None = None

    def __getattr__(self, name: str) -> Any:  # cfg, rate_unit, meta, check_resume, describe, ...
        return getattr(self.task, name)

    def train_set(self) -> torch.utils.data.Dataset:
        return _Indexed(self.task.train_set())

    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor], autocast: Any) -> torch.Tensor:
        if self.model is None:
            self.model = model
            for name, p in _unwrapped(model).named_parameters():
                p.register_post_accumulate_grad_hook(lambda p, name=name: self.grads.__setitem__(name, p.grad.clone()))
        self.batches.append({"index": batch["index"].tolist(), "item": batch["item"].tolist()})
        return self.task.loss(model, batch, autocast)

    def weights_sha256(self) -> str:
        state = _unwrapped(self.model).state_dict()
        h = hashlib.sha256()
        for k in sorted(state):
            h.update(k.encode())
            h.update(state[k].detach().float().cpu().numpy().tobytes())
        return h.hexdigest()


def _unwrapped(model: torch.nn.Module) -> torch.nn.Module:
    """The module under torch.compile's and DDP's wrappers."""
    while True:
        inner = getattr(model, "_orig_mod", None) or getattr(model, "module", None)
        if inner is None:
            return model
        model = inner


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from wavegen.config import load_config
    from wavegen.data import dataset
    from wavegen.train.loop import train
    from wavegen.train.wavenet import WaveNetTask

    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--set", action="append", default=[])
    args = ap.parse_args()
    cfg = load_config(args.config, args.set)
    task = Recording(WaveNetTask(cfg, dataset.load(args.data)))
    result = train(task, args.out, show_progress=False, log=lambda m: None)
    rank = int(os.environ.get("RANK", 0))
    world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
    ranks = Path(args.out) / "ranks"
    ranks.mkdir(parents=True, exist_ok=True)
    (ranks / f"rank-{rank}.json").write_text(json.dumps({
        "rank": rank, "node": int(os.environ.get("GROUP_RANK", 0)), "world": world, "step": result.step,
        "first_crop_indices": task.batches[0]["index"], "first_items": [b["item"] for b in task.batches[:8]],
        "weights_sha256": task.weights_sha256(),
    }) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
