"""What an exported model takes: tools/deployment/export.py exports a batch of one by default,
ends with the input's shape and normalisation, and ``image_to_input`` turns an image file into
that input, so that onnxruntime on one image gives the PyTorch model's prediction."""
import numpy as np
import onnxruntime
import torch
from helpers_tools import TINY_CONFIG, load_tool
from PIL import Image

from mmrepmlp.apis import load_model
from mmrepmlp.apis.export import image_to_input
from mmrepmlp.reparam import randomize_norm_layers


def test_onnx_export_runs_one_image_file_in_onnxruntime(tmp_path, capsys):
    model = randomize_norm_layers(load_model(TINY_CONFIG)[0])
    torch.save({'state_dict': model.state_dict()}, tmp_path / 'tiny.pth')
    pixels = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / 'image.png')

    load_tool('deployment/export.py').main([TINY_CONFIG, str(tmp_path / 'tiny.pth'),
                                            '--format', 'onnx'])

    last = capsys.readouterr().out.strip().splitlines()[-2:]
    assert last[0] == "input 'input': float32 (1, 3, 64, 64)"
    assert 'RGB' in last[1] and 'mean [127.5, 127.5, 127.5]' in last[1]
    assert 'std [64.0, 64.0, 64.0]' in last[1] and 'image_to_input' in last[1]
    inputs = image_to_input(TINY_CONFIG, str(tmp_path / 'image.png'))
    expected = (pixels.transpose(2, 0, 1)[None].astype(np.float32) - 127.5) / 64  # RGB file
    assert inputs.dtype == np.float32 and np.allclose(inputs, expected)
    session = onnxruntime.InferenceSession(str(tmp_path / 'tiny.onnx'),
                                           providers=['CPUExecutionProvider'])
    logits = session.run(None, {'input': inputs})[0]
    with torch.no_grad():
        reference = model(torch.from_numpy(inputs), mode='tensor').numpy()
    assert logits.shape == (1, 3) and np.allclose(logits, reference, rtol=1e-4, atol=1e-5)
