#!/usr/bin/env bash
# Testing on a Slurm cluster, one task per GPU.
#   tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [tools/test.py arguments]
# Environment: GPUS, GPUS_PER_NODE (0 for CPU nodes), CPUS_PER_TASK, SRUN_ARGS, PYTHON.
set -euo pipefail
source "$(dirname "$0")/launch_common.sh"
usage_unless 4 $# "$0 PARTITION JOB_NAME CONFIG CHECKPOINT [test.py arguments]"
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
CHECKPOINT=$4
shift 4
srun_tool "$PARTITION" "$JOB_NAME" test.py "$CONFIG" "$CHECKPOINT" "$@"
