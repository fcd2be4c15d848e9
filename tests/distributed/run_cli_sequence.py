"""Run several `defendr` commands one after another in the same torchrun workers.

    torchrun --standalone --nproc-per-node 2 tests/distributed/run_cli_sequence.py '[["--workdir", W, "train", ...], ...]'

Each command goes through the CLI as `python -m defendr_cli ARGS` does, except that the gloo
process group is initialised once here (the commands' sessions find it initialised and use it,
core.distributed.distributed_session) instead of once per command; sharing the workers saves the
start-up of new processes. A failing command stops the sequence with its exit code.
"""

from __future__ import annotations

import json
import sys

import torch.distributed as torch_dist

from defendr_cli.cli.app import app


def main() -> int:
    torch_dist.init_process_group("gloo")
    try:
        for args in json.loads(sys.argv[1]):
            try:
                app(args, prog_name="defendr")
            except SystemExit as exc:
                if exc.code not in (0, None):
                    return int(exc.code) if isinstance(exc.code, int) else 1
        return 0
    finally:
        torch_dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
