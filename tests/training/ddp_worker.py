"""Run by the distributed test: ``torchrun --nproc_per_node=2 ddp_worker.py OUT`` (or plain python).

The backbone is frozen (its BatchNorm in eval mode) so that the only difference between one and
two processes is floating-point summation order: BatchNorm over half a batch per process would
otherwise change the dynamics on this tiny dataset, whose classes differ only in brightness.
"""

import sys

import torch

from resnetlab.training import train
from tests.builders import make_tiny_bundle, tiny_config

if __name__ == "__main__":
    torch.set_num_threads(1)
    config = tiny_config(sys.argv[1], epochs=3, lr=0.002, batch_size=32, freeze_backbone=True, milestones=[],
                         precision="fp32")  # as the suite's auto: the same on every machine
    train(config, bundle=make_tiny_bundle(per_class=64))
