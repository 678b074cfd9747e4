#!/usr/bin/env bash
# Train wavegen on a multi-node GPU cluster with SLURM: one task per node, `accelerate launch` starts
# one process per GPU on each node, and accelerate wires them into one DDP job. Nothing in the code
# changes between a laptop and this; only the launch does.
#
#   sbatch scripts/slurm_train.sh                          # defaults below
#   NODES=4 GPUS_PER_NODE=8 sbatch --nodes=4 scripts/slurm_train.sh
#
# Precision, model and schedule come from the config file (mixed_precision = "bf16" in cluster.toml);
# accelerate launch's own --mixed_precision is not read (wavegen/train/loop.py owns the precision).
# Preemption: SLURM sends SIGTERM (--signal) before the time limit; wavegen saves a checkpoint and
# exits 0, and `--requeue` runs the same command again, which resumes from that checkpoint.
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
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
NODES=${SLURM_NNODES:-2}
MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
MASTER_PORT=${MASTER_PORT:-29500}

# srun starts one launcher per node; each launcher starts GPUS_PER_NODE training processes.
srun --kill-on-bad-exit=1 bash -c "
  .venv/bin/accelerate launch \
    --multi_gpu \
    --num_machines $NODES \
    --num_processes $((NODES * GPUS_PER_NODE)) \
    --machine_rank \$SLURM_NODEID \
    --main_process_ip $MASTER_ADDR \
    --main_process_port $MASTER_PORT \
    --dynamo_backend no \
    -m wavegen train --config $CONFIG --data $DATA --out $OUT
"
