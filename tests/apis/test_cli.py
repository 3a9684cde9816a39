"""What a tool's main does around the work: a distributed run that succeeded ends with its
process group destroyed (torch's request), not left to the interpreter's exit."""
import torch.distributed as dist
from helpers_tools import free_port

from mmrepmlp.apis.cli import tool_main


def test_a_successful_distributed_run_destroys_its_process_group():
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{free_port()}', rank=0,
                            world_size=1)

    @tool_main
    def main(argv=None):
        assert dist.is_initialized()
        return 'done'

    assert main([]) == 'done'
    assert not dist.is_initialized()
