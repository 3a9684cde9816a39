"""optimize_for_inference in a process that optimizes many models: each model compiles each of
its input shapes, however many models there are (Dynamo keeps all their compiled code in one
cache, whose own limit of 8 entries would make the ninth run eagerly)."""
import torch
from torch._dynamo.utils import counters

from mmrepmlp.deployment import inductor_available, optimize_for_inference

MODELS = 10  # more than Dynamo's default limit of 8


def test_every_optimized_model_runs_compiled_code():
    if not inductor_available(torch.device('cpu')):
        raise AssertionError('this test needs a C++ compiler for inductor (gcc or clang)')
    torch.manual_seed(0)
    models = [torch.nn.Conv2d(3, 4, 3).eval() for _ in range(MODELS)]
    optimized = [optimize_for_inference(m, log=lambda line: None) for m in models]
    x = torch.randn(2, 3, 8, 8)
    compiled_before = counters['stats']['unique_graphs']
    with torch.no_grad():
        for model, fast in zip(models, optimized):
            assert torch.allclose(fast(x), model(x), rtol=1e-5, atol=1e-6)
    assert counters['stats']['unique_graphs'] - compiled_before == MODELS
