"""The pure page model: no I/O of any kind; callers pass text and plain views in and get text back.

Modules: ``slug`` (file-name-safe slugs), ``markers`` (region marker lines), ``page`` (parse and render a page
file losslessly), ``merge`` (re-render on top of a page people edited), ``markdown`` (the wikilink plugin,
token-stream extraction, ``to_html``), ``escaping`` and ``sanitize`` (untrusted text in, safe markdown and
HTML out), ``entity_page`` (entity and source pages), ``catalog`` (index, log, contradictions), ``links``
(target resolution), ``lint`` (checks), ``errors``.
"""
