"""Run by test_collective_timeout.py: ``torchrun --nproc_per_node=2 stall_worker.py OUT SECONDS``.

Both processes answer one collective; then rank 1 stops answering (it waits for rank 0 to have
given up, rather than a fixed time, so nothing here depends on the machine's speed) and rank 0
enters a second one, which must fail after SECONDS with the message it writes to OUT/message.
"""

import sys
import time
from pathlib import Path

import torch

from resnetlab.training import distributed

if __name__ == "__main__":
    out, seconds = Path(sys.argv[1]), float(sys.argv[2])
    ctx = distributed.from_environment()
    distributed.init_process_group(ctx, torch.device("cpu"), timeout=seconds)
    answered = distributed.sum_over_processes(torch.ones(1))
    (out / f"rank{ctx.rank}-answered").write_text(str(answered.item()))
    if ctx.rank == 1:
        while not (out / "rank0-done").exists():
            time.sleep(0.05)
        sys.exit(0)
    try:
        distributed.sum_over_processes(torch.ones(1))
        (out / "message").write_text("the collective returned")
    except RuntimeError as exc:
        (out / "message").write_text(str(distributed.peer_error(exc, ctx)))
    finally:
        (out / "rank0-done").touch()
