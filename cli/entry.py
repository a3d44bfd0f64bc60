"""The ``conode`` console script: Ctrl-C at any moment, even while the command's modules load, is one line.

``cli.main`` imports every command's module (the store, the apps, the
rules: a fifth of a second and more on a small machine); a Ctrl-C in that
time would end in a traceback if the import ran before any handler. So this
module imports nothing of conode until it stands ready to catch the
interrupt, and exits 130 (128 + SIGINT) with one line, as ``cli.main`` does
for an interrupt while a command runs.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]

EXIT_INTERRUPTED = 130  # cli.output.EXIT_INTERRUPTED, not imported: nothing is, before the guard


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``conode`` command (``cli.main.main``); 130 and one line if interrupted."""
    try:
        from cli.main import main as run_command

        return run_command(argv)
    except KeyboardInterrupt:
        sys.stderr.write("\nconode: interrupted\n")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
