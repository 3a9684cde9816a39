#!/usr/bin/env bash
# Distributed training on this node (or NNODES nodes) with torchrun; on CPUs it uses gloo.
#   tools/dist_train.sh CONFIG NUM_PROCESSES [tools/train.py arguments]
# Environment: NNODES, NODE_RANK, MASTER_ADDR, PORT, PYTHON (see launch_common.sh).
set -euo pipefail
source "$(dirname "$0")/launch_common.sh"
usage_unless 2 $# "$0 CONFIG NUM_PROCESSES [train.py arguments]"
CONFIG=$1
NPROC=$2
shift 2
torchrun_tool train.py "$NPROC" "$CONFIG" "$@"
