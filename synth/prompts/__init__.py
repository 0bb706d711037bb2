"""Prompts: each a pure function ``build_messages(ctx) -> list[dict]`` next to its answer model.

| stage     | module      | context          | answer model  |
|-----------|-------------|------------------|---------------|
| extract   | ``extract`` | ``ExtractContext`` | ``Extraction`` |
| resolve   | ``resolve`` | ``ResolveContext`` | ``Resolution`` |
| judge     | ``judge``   | ``JudgeContext``   | ``Judgement``  |
| compose   | ``compose`` | ``ComposeContext`` | ``Summary``    |

Every prompt puts its stable text (instructions, schema summary, example) first so the server's prefix
cache hits across calls of a stage, and the untrusted data last, fenced by ``fence.fence``. Modules with
id or number references also offer ``validation_context(ctx)`` for ``ModelClient.complete``.
"""
