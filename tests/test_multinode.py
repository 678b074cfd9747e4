"""The multi-node rehearsal on one machine, and scripts/slurm_train.sh held to it.

Two torchrun launchers, one per "node" (node ranks 0 and 1 on 127.0.0.1, static rendezvous, one process
each, gloo), train configs/tiny.toml for a few steps through the training loop, as a cluster's nodes
would: each rank reads its own crops, DDP averages the gradients, and every rank must end with the same
weights, bit for bit (tests/recorded_train.py writes each rank's weight digest; the checkpoint rank 0
saved must have it too). The SLURM script must start exactly these launchers, one per node.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

from wavegen.nn import checkpoint

ROOT = Path(__file__).parent.parent
TINY = ROOT / "configs" / "tiny.toml"
SLURM = ROOT / "scripts" / "slurm_train.sh"


def launcher_flags(nodes: int, node_rank: int, procs_per_node: int, addr: str, port: int) -> list[str]:
    """torchrun's flags for one node of a job: what scripts/slurm_train.sh gives each node's launcher."""
    return ["--node-rank", str(node_rank), "--nnodes", str(nodes), "--nproc-per-node", str(procs_per_node),
            "--master-addr", addr, "--master-port", str(port)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"  # two processes on a small machine; accelerate would take every core
    return env


def _digest(state: dict) -> str:
    """recorded_train.py's weights_sha256 of a state dict."""
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].detach().float().cpu().numpy().tobytes())
    return h.hexdigest()


def test_two_nodes_on_localhost_end_with_identical_weights(tiny_dataset, tmp_path):
    run, port = tmp_path / "run", _free_port()
    train = [str(ROOT / "tests" / "recorded_train.py"), "--config", str(TINY), "--data", str(tiny_dataset),
             "--out", str(run), "--set", "train.steps=4", "--set", "train.sample_seconds=0"]
    nodes = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run",
                               *launcher_flags(2, node, 1, "127.0.0.1", port), *train],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env())
             for node in (0, 1)]
    outputs = []
    try:
        for p in nodes:
            outputs.append(p.communicate(timeout=100)[0])
    finally:
        for p in nodes:
            if p.poll() is None:
                p.kill()
                p.communicate()
    for node, (p, out) in enumerate(zip(nodes, outputs, strict=True)):
        assert p.returncode == 0, f"node {node}:\n{out[-3000:]}"
    ranks = [json.loads((run / "ranks" / f"rank-{r}.json").read_text()) for r in (0, 1)]
    assert [(r["rank"], r["node"], r["world"], r["step"]) for r in ranks] == [(0, 0, 2, 4), (1, 1, 2, 4)]
    assert ranks[0]["first_crop_indices"] != ranks[1]["first_crop_indices"]  # each rank its own crops
    assert ranks[0]["weights_sha256"] == ranks[1]["weights_sha256"]  # ... and the same weights after
    saved = checkpoint.load_train_state(checkpoint.step_dirs(run)[-1])
    assert saved["step"] == 4 and _digest(saved["raw_weights"]) == ranks[0]["weights_sha256"]


def _stand_in(path: Path, body: str) -> None:
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_the_slurm_script_starts_the_rehearsed_launchers(tmp_path):
    # SLURM's commands stood in for: scontrol names the first node, srun runs its command once per node
    # with that node's SLURM_NODEID, and the "python" it starts writes down what it was given
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    _stand_in(bin_ / "scontrol", 'echo node-a; echo node-b\n')
    _stand_in(bin_ / "srun", 'while [[ $1 == --* ]]; do shift; done\n'
                             'for id in 0 1; do SLURM_NODEID=$id "$@" || exit $?; done\n')
    _stand_in(tmp_path / "python", f'printf "%s\\n" "$@" > {tmp_path}/node-$SLURM_NODEID.args\n')
    env = {**os.environ, "PATH": f"{bin_}{os.pathsep}{os.environ['PATH']}", "PYTHON": str(tmp_path / "python"),
           "SLURM_NNODES": "2", "SLURM_JOB_NODELIST": "node-[a-b]", "GPUS_PER_NODE": "4", "MASTER_PORT": "29511",
           "CONFIG": "configs/tiny.toml", "DATA": "data/x", "OUT": "runs/x"}
    proc = subprocess.run(["bash", str(SLURM), "--set", "train.steps=7"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    train = ["-m", "wavegen", "train", "--config", "configs/tiny.toml", "--data", "data/x", "--out", "runs/x",
             "--set", "train.steps=7"]
    for node in (0, 1):
        got = (tmp_path / f"node-{node}.args").read_text().splitlines()
        assert got == ["-m", "torch.distributed.run", *launcher_flags(2, node, 4, "node-a", 29511), *train]
