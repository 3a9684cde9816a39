"""The quick start (``make demo``): train the pure-MLP model on the bundled digits, convert it,
and compare the training-time and deploy forms.

Everything runs on the CPU with no download: the data set is scikit-learn's handwritten digits
(:class:`mmrepmlp.datasets.Digits`), trained through MMEngine's Runner from
``configs/repmlp_cifar/pure-mlp_1xb32_digits.py``.
"""
import os
import os.path as osp
from dataclasses import dataclass

import torch

from ..analysis import count_flops, count_params, inference_speed
from ..models.blocks import RepMLPBlock
from ..reparam import repmlp_model_convert
from ..utils import find_repo_file
from .build import forward_raw, input_shape, load_config
from .config import fit_config_to_device
from .run import build_runner

CONFIG = osp.join('repmlp_cifar', 'pure-mlp_1xb32_digits.py')
DEFAULT_EPOCHS = 3
DEFAULT_WORK_DIR = osp.join('work_dirs', 'quick_start')
MIN_ACCURACY = 90.0
SPEED_BATCH = 64


@dataclass
class QuickStartResult:
    """What the quick start measured; ``train``/``deploy`` pairs are the two model forms.

    Accuracies are top-1 in percent on the held-out digits, FLOPs are multiply-accumulates of
    one image counted over convs and FCs (the paper's convention), speeds are images/s
    measured interleaved on the CPU.
    """
    epochs: int
    num_val: int
    train_accuracy: float
    deploy_accuracy: float
    max_abs_diff: float
    train_params: int
    deploy_params: int
    train_flops: int
    deploy_flops: int
    train_speed: float
    deploy_speed: float
    plot_path: str
    deploy_path: str

    def passed(self, min_accuracy=MIN_ACCURACY):
        """Both forms agree and the deploy model reaches ``min_accuracy``."""
        return (self.deploy_accuracy == self.train_accuracy
                and self.deploy_accuracy >= min_accuracy)


def quick_start_config(epochs, work_dir, seed=0):
    """The digits config with the epoch count (and its cosine schedule) and work dir set."""
    if epochs < 1:
        raise ValueError(f'quick start: epochs must be at least 1, got {epochs}')
    cfg = load_config(osp.join(find_repo_file('configs'), CONFIG))
    cfg.train_cfg.max_epochs = epochs
    cfg.param_scheduler.T_max = epochs
    cfg.work_dir = work_dir
    cfg.randomness = dict(seed=seed)
    return fit_config_to_device(cfg)


def run_quick_start(epochs=DEFAULT_EPOCHS, work_dir=DEFAULT_WORK_DIR, speed_rounds=5, seed=0):
    """Train, convert, evaluate both forms and plot; see the module docstring.

    Args:
        epochs (int): training epochs. Defaults to ``DEFAULT_EPOCHS``.
        work_dir (str): logs, checkpoint, ``deploy.pth`` and ``quick_start.png`` go here.
            Defaults to ``DEFAULT_WORK_DIR``.
        speed_rounds (int): timed interleaved rounds of the speed measurement. Defaults to 5.
        seed (int): random seed of the run. Defaults to 0.

    Returns:
        QuickStartResult: the measurements.
    """
    cfg = quick_start_config(epochs, work_dir, seed)
    runner = build_runner(cfg)
    model = runner.train().eval()
    deploy_path = osp.join(work_dir, 'deploy.pth')
    deploy_model = repmlp_model_convert(model, save_path=deploy_path).eval()

    inputs, labels = preprocessed_split(runner.val_dataloader, model.data_preprocessor)
    with torch.no_grad():
        train_logits = forward_raw(model, inputs)
        deploy_logits = forward_raw(deploy_model, inputs)
    shape = input_shape(cfg)
    speeds = inference_speed({'train': model, 'deploy': deploy_model},
                             inputs[:SPEED_BATCH], rounds=speed_rounds)
    plot_path = save_plot(runner.message_hub, model, deploy_model,
                          osp.join(work_dir, 'quick_start.png'))
    return QuickStartResult(
        epochs=epochs,
        num_val=len(labels),
        train_accuracy=top1_accuracy(train_logits, labels),
        deploy_accuracy=top1_accuracy(deploy_logits, labels),
        max_abs_diff=(train_logits - deploy_logits).abs().max().item(),
        train_params=count_params(model),
        deploy_params=count_params(deploy_model),
        train_flops=count_flops(model, shape, conv_fc_only=True),
        deploy_flops=count_flops(deploy_model, shape, conv_fc_only=True),
        train_speed=speeds['train'],
        deploy_speed=speeds['deploy'],
        plot_path=plot_path,
        deploy_path=deploy_path)


def preprocessed_split(dataloader, data_preprocessor):
    """The whole (small) split as one normalized batch and its labels."""
    inputs, labels = [], []
    for batch in dataloader:
        data = data_preprocessor(batch, False)
        inputs.append(data['inputs'])
        labels += [sample.gt_label.item() for sample in data['data_samples']]
    return torch.cat(inputs), torch.tensor(labels)


def dataloader_accuracy(model, dataloader):
    """Top-1 accuracy (%) of a classifier's raw outputs on ``dataloader``, batch by batch
    (a compiled or int8 model then sees the loader's batch shapes)."""
    correct = total = 0
    with torch.no_grad():
        for batch in dataloader:
            inputs, labels = preprocessed_split([batch], model.data_preprocessor)
            correct += (forward_raw(model, inputs).argmax(dim=1) == labels).sum().item()
            total += len(labels)
    return 100 * correct / total


def top1_accuracy(logits, labels):
    """Top-1 accuracy (%) of ``logits`` ``(N, classes)`` for ``labels`` ``(N,)``."""
    return (logits.argmax(dim=1) == labels).float().mean().item() * 100


def save_plot(message_hub, model, deploy_model, path):
    """Training curve and the first RepMLP's FC3 before/after the merge, as one PNG.

    The FC3 panels show the weights from input channel 0 to output channel 0 over one
    partition (rows: output pixels, columns: input pixels): before the merge a plain FC;
    after it, the merged Local Perceptron convs appear as bands around the diagonal.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    losses = message_hub.get_scalar('train/loss').data[0]
    accuracies = message_hub.get_scalar('val/accuracy/top1').data[0]
    name, block = next((n, m) for n, m in model.named_modules() if isinstance(m, RepMLPBlock))
    # The deploy FC3 in the training form's channel-major layout, as the panels show it.
    merged = deploy_model.get_submodule(name).get_equivalent_fc1_fc3_params()[2]
    before, after = (_fc3_channel_block(weight.detach(), block.partition_size)
                     for weight in (block.fc3.weight, merged))

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    axes[0].plot(losses, color='tab:blue')
    axes[0].set(xlabel='iteration', ylabel='training loss', title='Training')
    val_axis = axes[0].twinx()
    iters_per_epoch = len(losses) / len(accuracies)
    val_axis.plot([iters_per_epoch * (i + 1) for i in range(len(accuracies))], accuracies,
                  'o-', color='tab:red')
    val_axis.set_ylabel('held-out top-1 (%)', color='tab:red')
    for ax, weight, title in ((axes[1], before, 'FC3 before merge'),
                              (axes[2], after, 'FC3 after merge (+ BN, local convs)')):
        image = ax.imshow(weight, cmap='coolwarm')
        ax.set(title=f'{title}\n{name}', xlabel='input pixel', ylabel='output pixel')
        fig.colorbar(image, ax=ax)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _fc3_channel_block(weight, partition_size):
    """The ``(h*w, h*w)`` block of an FC3 weight from input channel 0 to output channel 0."""
    num_pixels = partition_size[0] * partition_size[1]
    return weight.detach()[:num_pixels, :num_pixels].cpu().numpy()


def format_report(result):
    """The summary table the quick start prints last (README shows it)."""
    rows = [
        ('top-1 accuracy (%)', f'{result.train_accuracy:.2f}', f'{result.deploy_accuracy:.2f}'),
        ('params (M)', f'{result.train_params / 1e6:.3f}', f'{result.deploy_params / 1e6:.3f}'),
        ('FLOPs (M MACs, conv+FC)', f'{result.train_flops / 1e6:.1f}',
         f'{result.deploy_flops / 1e6:.1f}'),
        (f'images/s (CPU, batch {SPEED_BATCH})', f'{result.train_speed:.0f}',
         f'{result.deploy_speed:.0f}'),
    ]
    lines = [
        f'RepMLP pure-MLP model on scikit-learn digits: {result.epochs} epochs, '
        f'{result.num_val} held-out images',
        f'{"":<28}{"train-time":>12}{"deploy":>12}',
        *(f'{label:<28}{train:>12}{deploy:>12}' for label, train, deploy in rows),
        f'max |logit difference|: {result.max_abs_diff:.2e}',
        f'speed-up of the deploy form: {result.deploy_speed / result.train_speed:.2f}x',
        f'plot: {result.plot_path}',
        f'deploy weights: {result.deploy_path}',
    ]
    return '\n'.join(lines)
