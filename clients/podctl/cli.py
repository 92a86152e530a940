"""podctl: the kubectl-like CLI. It talks only to the bus.

The verbs arrive with the podctl issue; until then podctl says so plainly.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("podctl: no verbs yet in this version (see the podctl issue)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
