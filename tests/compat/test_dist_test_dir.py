"""mmrepmlp.compat.dist_test_dir: distributed evaluation leaves no ``.dist_test`` behind."""
import os
import textwrap

from helpers_compat import free_port, run_pythons

COLLECT = textwrap.dedent("""\
    import json
    import os
    import sys

    if sys.argv[1] == 'fixed':
        import mmrepmlp  # noqa: F401  (applies the fixes)
    import torch.distributed as dist
    from mmengine.dist import collect_results

    dist.init_process_group('gloo')
    rank = dist.get_rank()
    # what the evaluator does with each rank's results (collect_device='cpu', no tmpdir)
    gathered = collect_results([f'rank{rank}'], 2, device='cpu')
    dist.barrier()
    print(json.dumps(dict(gathered=gathered, left=os.path.isdir('.dist_test'))))
    dist.destroy_process_group()
    """)


def _collect_on_two_ranks(tmp_path, mode):
    folder = tmp_path / mode
    folder.mkdir()
    script = folder / 'collect.py'
    script.write_text(COLLECT)
    port = str(free_port())
    env = [dict(os.environ, MASTER_ADDR='127.0.0.1', MASTER_PORT=port, RANK=str(rank),
                WORLD_SIZE='2', CUDA_VISIBLE_DEVICES='') for rank in range(2)]
    code = f'import sys; sys.argv = ["collect.py", {mode!r}]\n' + COLLECT
    return run_pythons([(code, env[0]), (code, env[1])], folder, timeout=120), folder


def test_collect_results_leaves_dist_test_upstream_and_not_with_fix(tmp_path):
    upstream, upstream_dir = _collect_on_two_ranks(tmp_path, 'upstream')
    fixed, fixed_dir = _collect_on_two_ranks(tmp_path, 'fixed')

    for ranks in (upstream, fixed):
        assert ranks[0]['gathered'] == ['rank0', 'rank1'] and ranks[1]['gathered'] is None
    assert (upstream_dir / '.dist_test').is_dir()
    assert list((upstream_dir / '.dist_test').iterdir()) == []  # empty, yet left behind
    assert not (fixed_dir / '.dist_test').exists()


def test_a_folder_that_was_there_is_kept(tmp_path, monkeypatch):
    from mmrepmlp.compat.dist_test_dir import _wrap_collect_results_cpu

    monkeypatch.chdir(tmp_path)
    (tmp_path / '.dist_test').mkdir()
    wrapped = _wrap_collect_results_cpu(lambda part, size, tmpdir=None: part[:size])

    assert wrapped(['a', 'b'], 1) == ['a']
    assert (tmp_path / '.dist_test').is_dir()
