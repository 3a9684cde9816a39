#!/usr/bin/env bash
# Distributed testing on this node (or NNODES nodes) with torchrun; on CPUs it uses gloo.
#   tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCESSES [tools/test.py arguments]
# Environment: NNODES, NODE_RANK, MASTER_ADDR, PORT, PYTHON (see launch_common.sh).
set -euo pipefail
source "$(dirname "$0")/launch_common.sh"
usage_unless 3 $# "$0 CONFIG CHECKPOINT NUM_PROCESSES [test.py arguments]"
CONFIG=$1
CHECKPOINT=$2
NPROC=$3
shift 3
torchrun_tool test.py "$NPROC" "$CONFIG" "$CHECKPOINT" "$@"
