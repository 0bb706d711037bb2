"""``python -m lore``: the same command line as the ``lore`` script."""

from lore.cli import app

app()
