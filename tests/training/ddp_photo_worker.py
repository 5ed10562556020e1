"""Run by the multi-process photo tests: ``torchrun ... ddp_photo_worker.py OUT DATA`` (or plain python).

A resnet20 on 32 px crops of a generated photo folder, streamed from disk by one worker process
per rank. The backbone is frozen (its BatchNorm in eval mode) so that one process and several
differ only in floating-point summation order (see tests/training/ddp_worker.py).
"""

import sys

import torch

from resnetlab.training import resolve_config, train

if __name__ == "__main__":
    torch.set_num_threads(1)
    out, data = sys.argv[1], sys.argv[2]
    values = dict(model="resnet20", dataset="folder", data_dir=data, image_size=32, stream=True, workers=1, epochs=2,
                  max_iters=None, batch_size=8, lr=0.01, milestones=[], freeze_backbone=True, device="cpu", quiet=True, out=out)
    train(resolve_config("paper", overrides=values))
