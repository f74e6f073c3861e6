"""``twofold serve`` as a real process, for tests where the process is the point: several
instances behind nginx, SIGKILL under load, store outages. The processes are those of
``twofold bench`` (src/twofold/bench/instances.py): settings go in as ``TWOFOLD_*``
environment variables, exactly as an operator would give them."""

from __future__ import annotations

from twofold.bench.instances import TWOFOLD, migrate
from twofold.bench.instances import Instance as TwofoldProcess

__all__ = ["TWOFOLD", "TwofoldProcess", "migrate"]
