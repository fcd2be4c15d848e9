"""Run several `defendr` commands one after another in the same torchrun workers.

    torchrun --standalone --nproc-per-node 2 tests/distributed/run_cli_sequence.py '[["--workdir", W, "train", ...], ...]'

Each command goes through the CLI exactly as `python -m defendr_cli ARGS` does (it initialises and
destroys the process group itself); sharing the workers only saves the start-up of new processes.
A failing command stops the sequence with its exit code.
"""

from __future__ import annotations

import json
import sys

from defendr_cli.cli.app import app


def main() -> int:
    for args in json.loads(sys.argv[1]):
        try:
            app(args, prog_name="defendr")
        except SystemExit as exc:
            if exc.code not in (0, None):
                return int(exc.code) if isinstance(exc.code, int) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
