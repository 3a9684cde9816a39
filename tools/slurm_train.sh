#!/usr/bin/env bash
# Training on a Slurm cluster, one task per GPU.
#   tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [tools/train.py arguments]
# Environment: GPUS, GPUS_PER_NODE (0 for CPU nodes), CPUS_PER_TASK, SRUN_ARGS, PYTHON.
set -euo pipefail
source "$(dirname "$0")/launch_common.sh"
usage_unless 4 $# "$0 PARTITION JOB_NAME CONFIG WORK_DIR [train.py arguments]"
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
shift 4
srun_tool "$PARTITION" "$JOB_NAME" train.py "$CONFIG" --work-dir="$WORK_DIR" "$@"
