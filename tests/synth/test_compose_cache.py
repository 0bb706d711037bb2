"""A summary the model cannot write is not asked for again until the page's claims change."""

from __future__ import annotations

from sqlalchemy import select

from store.jobs import enqueue_job
from store.models import Entity, Page
from synth.runner import drain
from tests.synth.conftest import make_wiki

SENTENCES = (
    "The Billing service is owned by Team Atlas.",
    "The Billing service runs on Kubernetes.",
    "The Billing service stores invoices in PostgreSQL.",
    "The Billing service sends receipts by email.",
    "The Billing service was moved to Frankfurt in 2021.",
    "The Billing service is called by the Checkout service.",
)


def _doc(tmp_path, name: str, sentences: tuple[str, ...]):
    path = tmp_path / name
    path.write_text("# " + name + "\n\n" + " ".join(sentences) + "\n")
    return path


def _compose_calls(fake) -> int:
    return fake.stats()["by_stage"].get("compose", 0)


def test_a_failed_summary_is_kept_as_none_for_its_claim_set(tmp_path, fake_llm):
    wiki = make_wiki(tmp_path, fake_llm)
    wiki.ingest(_doc(tmp_path, "a.md", SENTENCES[:2]))
    wiki.run()
    wiki.ingest(_doc(tmp_path, "b.md", SENTENCES[2:4]))

    drain(wiki.deps, max_jobs=1)  # b's extraction, answered well
    fake_llm.configure(malformed_rate=1.0)  # from here every answer is broken, compose's too
    wiki.run()
    failed = _compose_calls(fake_llm)
    assert failed == 2  # the call and its repair, then facts only
    with wiki.deps.session_factory() as s:
        billing = s.scalar(select(Entity).where(Entity.name.startswith("Billing")))
        page = s.scalar(select(Page).where(Page.entity_id == billing.id))
        assert page.prose == ""
        entity_id, path = billing.id, billing.page_path
    assert "Team Atlas" in wiki.deps.store.read(path).content.decode()  # the facts are on the page

    fake_llm.configure(malformed_rate=0.0)
    with wiki.deps.session_factory() as s, s.begin():  # a re-render of the same claims
        enqueue_job(s, "render", f"render:{entity_id}", {"entity_id": entity_id}, entity_id=entity_id,
                    requeue_finished=True)
    wiki.run()
    assert _compose_calls(fake_llm) == failed  # not asked again

    wiki.ingest(_doc(tmp_path, "c.md", SENTENCES[4:]))
    wiki.run()
    assert _compose_calls(fake_llm) > failed  # new claims: asked again, and answered
    with wiki.deps.session_factory() as s:
        assert s.scalar(select(Page.prose).where(Page.entity_id == entity_id))
