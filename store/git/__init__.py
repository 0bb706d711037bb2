"""The git page store's write machinery (DESIGN section 2 and 6).

- :mod:`store.git.group_commit`: the on-disk queue and the short-lived leader that publishes every
  change ready at the same moment in one commit with one ref update.
- :mod:`store.git.batch`: how one batch of changes becomes one tree and one commit, each change
  checked against the versions it was built on.
- :mod:`store.git.remote`: a central repository of record; a publish is a push with the expected old
  value, a rejected push a lost race.

:class:`store.git_store.GitStore` composes them; its :meth:`~store.git_store.GitStore.update` is the one
publish API every flow uses.
"""
