"""Starting weights whose first convolution whitens the training images' patches: an experiment.

Fast CIFAR recipes (Keller Jordan's airbench, after tysam-code's hlb-CIFAR10) start their first
layer as a patch-whitening transform: each filter is a principal direction of the training images'
k x k patches, divided by the square root of its variance, with its negative beside it so that the
ReLU after it keeps both signs. The network's first features then carry the most variance of the
data from the first step instead of random projections. Only the initial values change: the layer
stays trainable and the architecture is the paper's.

In the fast recipe's ablation it led early and ended level (docs/fast-recipe.md), so it is no
training option; this script keeps it reproducible through the ordinary CLI. It takes the flags of
``resnetlab train``, builds the model a fresh run of them starts from (same seed, same data and
normalisation), whitens its first convolution and writes a checkpoint for ``--init-from``:

    python experiments/whitened_init.py --recipe fast --model resnet20 --dataset folder --data-dir DIR --save whitened.pt
    resnetlab train --recipe fast --model resnet20 --dataset folder --data-dir DIR --init-from whitened.pt --out runs/whitened

Given the same model, data and seed flags, the run starts from the weights a fresh run would have
but for the first convolution (``--init-from`` on a checkpoint keeps the data's own normalisation).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from resnetlab.checkpoint import build_checkpoint, save_checkpoint
from resnetlab.cli.train_cmd import add_config_flags, overrides_from
from resnetlab.data import DatasetBundle
from resnetlab.errors import ResnetlabError
from resnetlab.training import TrainConfig, list_recipes, resolve_config
from resnetlab.training.run import build_model, load_data, normalized
from resnetlab.training.trainer import run_description

SAMPLE_IMAGES = 5000  # patches of this many training images estimate the covariance
EPS = 5e-4  # added to each eigenvalue: bounds the weight of near-constant directions


def first_convolution(model: nn.Module) -> nn.Conv2d:
    """The first Conv2d the model registers (its stem: ``conv1`` in every resnetlab model)."""
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None:
        raise ValueError(f"{type(model).__name__} has no convolution to whiten")
    return conv


def normalised_sample(images: torch.Tensor, mean: Sequence[float], std: Sequence[float], count: int,
                      seed: int) -> torch.Tensor:
    """``count`` uint8 (N, C, H, W) images picked by ``seed``, as float and normalised as training sees them."""
    pick = torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(seed))[:count]
    x = images[pick].float() / 255.0
    shape = (1, -1, 1, 1)
    return (x - torch.tensor(mean).view(shape)) / torch.tensor(std).view(shape)


def patch_covariance(images: torch.Tensor, kernel_size: int, chunk: int = 500) -> torch.Tensor:
    """Covariance (C k^2, C k^2) of all k x k patches of float (N, C, H, W) images, in float64,
    accumulated ``chunk`` images at a time (all patches of 5000 CIFAR images at once: about 1 GB)."""
    dims = images.shape[1] * kernel_size**2
    total, outer, count = torch.zeros(dims, dtype=torch.float64), torch.zeros(dims, dims, dtype=torch.float64), 0
    for start in range(0, images.shape[0], chunk):
        patches = nn.functional.unfold(images[start:start + chunk].double(), kernel_size)  # (n, dims, positions)
        patches = patches.transpose(1, 2).reshape(-1, dims)
        total += patches.sum(dim=0)
        outer += patches.T @ patches
        count += patches.shape[0]
    mean = total / count
    return (outer - count * torch.outer(mean, mean)) / (count - 1)


def patch_whitening_filters(images: torch.Tensor, kernel_size: int, out_channels: int,
                            eps: float = EPS) -> torch.Tensor:
    """Filters (2 k, C, kernel, kernel), k = min(out_channels // 2, C kernel^2): the top k principal
    directions of the images' patches scaled by 1/sqrt(variance + eps), each followed by its negative."""
    channels = images.shape[1]
    eigenvalues, eigenvectors = torch.linalg.eigh(patch_covariance(images, kernel_size))  # ascending
    count = min(out_channels // 2, eigenvalues.numel())
    top_values, top_vectors = eigenvalues.flip(0)[:count], eigenvectors.flip(1)[:, :count]
    filters = (top_vectors / (top_values + eps).sqrt()).T.reshape(count, channels, kernel_size, kernel_size)
    pairs = torch.stack([filters, -filters], dim=1)  # (k, 2, C, kernel, kernel): each direction, then its negative
    return pairs.reshape(2 * count, channels, kernel_size, kernel_size).float()


@torch.no_grad()
def whiten_first_convolution(model: nn.Module, images: torch.Tensor, mean: Sequence[float], std: Sequence[float],
                             seed: int = 0) -> int:
    """Overwrite the leading filters of the model's first convolution; return how many were set.

    ``images``: the training split, uint8 (N, C, H, W). Filters beyond 2 C kernel^2 (none in the
    paper's nets: 16 filters of 27 inputs) keep their default initialisation.
    """
    conv = first_convolution(model)
    if conv.groups != 1 or conv.kernel_size[0] != conv.kernel_size[1]:
        raise ValueError("the first convolution must be square and ungrouped to be whitened")
    sample = normalised_sample(images, mean, std, SAMPLE_IMAGES, seed)
    filters = patch_whitening_filters(sample, conv.kernel_size[0], conv.out_channels)
    conv.weight[: filters.shape[0]] = filters.to(conv.weight)
    return filters.shape[0]


def training_data(config: TrainConfig) -> DatasetBundle:
    """The images and the normalisation a fresh ``resnetlab train`` run of ``config`` trains on."""
    return normalized(load_data(config), config)


def whitened_model(config: TrainConfig, bundle: DatasetBundle) -> tuple[nn.Module, int]:
    """The model a fresh run of ``config`` starts from, its first convolution whitened; and how many filters were set."""
    if bundle.pipeline != "small":
        raise ResnetlabError("a whitened first convolution needs small images of one size (CIFAR-like), not a photo folder")
    torch.manual_seed(config.seed)  # as train() seeds before it builds the model
    model = build_model(config, bundle, torch.device("cpu"))
    return model, whiten_first_convolution(model, bundle.train.images, bundle.mean, bundle.std, config.seed)


def save_whitened(config: TrainConfig, bundle: DatasetBundle, path: Path) -> int:
    """Write the whitened starting weights as a checkpoint ``resnetlab train --init-from`` reads; the filter count."""
    model, count = whitened_model(config, bundle)
    save_checkpoint(build_checkpoint(**run_description(config, bundle), state_dict=model.state_dict()), path)
    return count


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--save", required=True, metavar="FILE", help="the checkpoint to write, for 'resnetlab train --init-from FILE'")
    p.add_argument("--recipe", choices=list_recipes(), default=argparse.SUPPRESS, help="recipe (default: paper)")
    p.add_argument("--config", dest="config_file", default=None, metavar="FILE", help="YAML file of config fields")
    p.add_argument("--model-option", dest="model_options", action="append", default=argparse.SUPPRESS,
                   metavar="KEY=VALUE", help="model option, e.g. shortcut=B (repeatable)")
    add_config_flags(p, exclude={"model_options", "recipe", "init_from", "out"})
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        overrides = overrides_from(args)
        config = resolve_config(overrides.pop("recipe", None), args.config_file, overrides)
        count = save_whitened(config, training_data(config), Path(args.save))
    except ResnetlabError as exc:
        print(f"whitened_init.py: error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.save}: {config.model} with {count} first-convolution filters from whitened training-image patches; "
          f"train from it with the same flags and --init-from {args.save}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
