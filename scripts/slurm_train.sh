#!/usr/bin/env bash
# Train wavegen on a multi-node GPU cluster with SLURM: one task per node, each a `torchrun` that starts
# one process per GPU; the launchers meet at the first node (static rendezvous, node rank = SLURM's node
# id) and the training loop's Accelerator takes the job from torchrun's environment (RANK, WORLD_SIZE,
# LOCAL_RANK, MASTER_ADDR): NCCL on GPUs, gloo on CPUs. Nothing in the code changes between a laptop and
# this; only the launch does. Extra arguments go to `wavegen train`:
#
#   sbatch scripts/slurm_train.sh                                     # the defaults below, 2 nodes x 8 GPUs
#   GPUS_PER_NODE=4 sbatch --nodes=4 --gpus-per-node=4 scripts/slurm_train.sh --set train.steps=50000
#   CONFIG=configs/maestro-gpu.toml DATA=data/build/maestro OUT=runs/maestro sbatch scripts/slurm_train.sh
#
# tests/test_multinode.py rehearses this launch on one machine: two torchrun launchers with these flags
# (--nnodes 2, --node-rank 0 and 1, --master-addr 127.0.0.1), gloo, configs/tiny.toml, and every rank must
# end with the same weights; it also runs this script under a stand-in srun and checks that each node's
# launcher gets those flags.
#
# Why torchrun and not `accelerate launch --num_machines`: torchrun's launch means one thing, given by
# its flags, on CPUs and GPUs alike. `accelerate launch` also reads a config file if one is there
# (~/.cache/huggingface/accelerate/default_config.yaml, written by `accelerate config`: one node's file
# can change its launch and not the others'), and its meaning turns on a flag: tried on one CPU machine
# as two machines, `--multi_gpu` made the DDP job, but `--cpu` started one independent process per
# "machine", two separate runs into the same --out (the second stopped at the run folder's lock). With
# --multi_gpu it runs torch.distributed.run underneath anyway, with these flags under other names; what it adds
# (--mixed_precision, --dynamo_backend) is not read: precision and torch.compile come from the config
# (train.mixed_precision, train.compile; wavegen/train/loop.py).
#
# Preemption: SLURM sends SIGTERM (--signal) before the time limit; torchrun passes it to the training
# processes (and kills them 30 s later), wavegen finishes its step, saves a checkpoint and stops, and
# `--requeue` runs the same command again, which resumes from that checkpoint.
#
#SBATCH --job-name=wavegen
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=64
#SBATCH --time=24:00:00
#SBATCH --signal=TERM@300
#SBATCH --requeue
#SBATCH --output=runs/slurm-%j.out
set -euo pipefail

CONFIG=${CONFIG:-configs/cluster.toml}
DATA=${DATA:-data/build/bach}
OUT=${OUT:-runs/cluster}
PYTHON=${PYTHON:-.venv/bin/python}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}  # training processes per node: one per GPU
NODES=${SLURM_NNODES:-2}
# the first node's name; sed reads the whole list (head would close the pipe early: under pipefail a
# long list's writer dies of SIGPIPE and the script with it)
MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | sed -n 1p)
MASTER_PORT=${MASTER_PORT:-29500}

LAUNCH=(--nnodes "$NODES" --nproc-per-node "$GPUS_PER_NODE" --master-addr "$MASTER_ADDR" --master-port "$MASTER_PORT")
TRAIN=(-m wavegen train --config "$CONFIG" --data "$DATA" --out "$OUT" "$@")

# srun starts one launcher per node. $SLURM_NODEID differs from node to node, so it is read in each task
# (single quotes), not here; exec leaves torchrun as the task's process, the one SLURM signals.
srun --kill-on-bad-exit=1 bash -c 'exec "$0" -m torch.distributed.run --node-rank "$SLURM_NODEID" "$@"' \
    "$PYTHON" "${LAUNCH[@]}" "${TRAIN[@]}"
