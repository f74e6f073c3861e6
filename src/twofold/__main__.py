"""``python -m twofold`` is the ``twofold`` command."""

from twofold.cli import app

app(prog_name="twofold")
