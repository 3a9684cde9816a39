# Shared by the dist_* and slurm_* launchers (sourced, not run).
# The launched tools import mmrepmlp from this checkout even when it is not installed.
TOOLS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export PYTHONPATH="$TOOLS_DIR/..${PYTHONPATH:+:$PYTHONPATH}"

# The interpreter: $PYTHON, else the checkout's .venv (what `make` creates), else python3.
# It must have torch: without that every process would fail with the same traceback.
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$TOOLS_DIR/../.venv/bin/python" ]; then
        PYTHON="$TOOLS_DIR/../.venv/bin/python"
    else
        PYTHON=$(command -v python3 || command -v python || echo python3)
    fi
fi
if ! "$PYTHON" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("torch") is None)' 2>/dev/null; then
    echo "error: $PYTHON cannot import torch; activate the environment mmrepmlp is installed in or set PYTHON=/path/to/python (make creates .venv)" >&2
    exit 1
fi

# torchrun_tool SCRIPT NPROC [ARGS...]: NPROC processes per node, `--launcher pytorch`.
# Environment: NNODES (1), NODE_RANK (0), MASTER_ADDR (127.0.0.1), PORT (29500).
# Bad input (config, data, checkpoint) is reported once by a dry run in this process
# before any worker starts: torchrun would stop the other workers as soon as the first one
# fails, often before it has said why.
torchrun_tool() {
    local script=$1 nproc=$2
    shift 2
    "$PYTHON" "$TOOLS_DIR/$script" "$@" --dry-run > /dev/null || exit $?
    exec "$PYTHON" -m torch.distributed.run \
        --nnodes="${NNODES:-1}" \
        --node_rank="${NODE_RANK:-0}" \
        --master_addr="${MASTER_ADDR:-127.0.0.1}" \
        --master_port="${PORT:-29500}" \
        --nproc_per_node="$nproc" \
        "$TOOLS_DIR/$script" "$@" --launcher pytorch
}

# srun_tool PARTITION JOB_NAME SCRIPT [ARGS...]: one task per GPU, `--launcher slurm`.
# Environment: GPUS (8), GPUS_PER_NODE (8; 0 for CPU nodes), CPUS_PER_TASK (5), SRUN_ARGS.
srun_tool() {
    local partition=$1 job_name=$2 script=$3
    shift 3
    local gpus_per_node=${GPUS_PER_NODE:-8}
    local gres=()
    if [ "$gpus_per_node" -gt 0 ]; then
        gres=(--gres="gpu:$gpus_per_node" --ntasks-per-node="$gpus_per_node")
    fi
    # SRUN_ARGS is a list of options: split on spaces on purpose.
    # shellcheck disable=SC2086
    exec srun -p "$partition" \
        --job-name="$job_name" \
        "${gres[@]}" \
        --ntasks="${GPUS:-8}" \
        --cpus-per-task="${CPUS_PER_TASK:-5}" \
        --kill-on-bad-exit=1 \
        ${SRUN_ARGS:-} \
        "$PYTHON" -u "$TOOLS_DIR/$script" "$@" --launcher slurm
}

usage_unless() {
    # usage_unless MIN_ARGS GIVEN USAGE
    if [ "$2" -lt "$1" ]; then
        echo "usage: $3" >&2
        exit 2
    fi
}
