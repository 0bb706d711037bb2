"""``python -m lore.cli``: the ``lore`` command line (``lore.runtime`` starts its children this way)."""

from lore.cli import app

app()
