"""benchmarks/face_speed.py --training in its CI mode (a subprocess: its workers are spawned from
the script): Partial FC trained by one process and by two, at two class counts. No timing is
asserted; the head's memory per process is checked."""
import re
import subprocess
import sys

from helpers_tools import REPO_ROOT, tool_env

EMBEDDING = 512
ROW = re.compile(r'^\| (\d+) \| (\d) \| ([0-9.]+) \| ([0-9.]+)x \| ([0-9.]+) \| ([0-9.]+)x \|$',
                 re.MULTILINE)


def test_head_memory_per_process_falls_with_the_process_count():
    result = subprocess.run([sys.executable, f'{REPO_ROOT}/benchmarks/face_speed.py',
                             '--training', '--quick'], capture_output=True, text=True,
                            env=tool_env(), timeout=600)

    assert result.returncode == 0, result.stderr[-3000:]
    rows = {(int(c), int(p)): (float(mib), float(ratio), float(speed))
            for c, p, mib, ratio, speed, _ in ROW.findall(result.stdout)}
    assert sorted(rows) == [(1000, 1), (1000, 2), (20000, 1), (20000, 2)]
    for classes in (1000, 20000):
        # centres, their gradient and their momentum, float32, in MiB
        assert rows[classes, 1][0] == round(3 * classes * EMBEDDING * 4 / 2**20, 1)
        assert rows[classes, 2][1] == 0.5  # a half in each of two processes
    assert all(speed > 0 for _, _, speed in rows.values())
