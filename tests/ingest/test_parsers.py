"""Each format becomes markdown text, a title and metadata, parsed in the sandbox like in production."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest import sniff
from ingest.errors import ParseFailed
from ingest.sandbox import parse_in_sandbox

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def parse(data: bytes, name: str = ""):
    media_type = sniff.sniff(data, name).media_type
    return media_type, parse_in_sandbox(data, media_type, timeout_s=30, memory_mb=1024)


def test_markdown_postmortem(shared_data):
    path = shared_data / "ops/dfds-postmortems/docs/PM2020-001 - Inotify file watches exhaustion.md"
    media_type, doc = parse(path.read_bytes(), path.name)
    assert media_type == sniff.MARKDOWN
    assert doc.title == "Inotify file watches exhaustion"
    assert "## Timeline" in doc.text
    assert "| 2020-01-20 13:50 | Node starts reporting" in doc.text  # tables kept as written
    assert doc.metadata["encoding"] == "utf-8"


def test_markdown_runbook_with_yaml_front_matter(shared_data):
    path = shared_data / "ops/prometheus-runbooks/runbooks/kubernetes/CPUThrottlingHigh.md"
    media_type, doc = parse(path.read_bytes(), path.name)
    assert media_type == sniff.MARKDOWN
    assert doc.title == "CPU Throttling High"
    assert doc.metadata["weight"] == 20
    assert doc.text.startswith("# CPU Throttling High\n")
    assert "weight:" not in doc.text
    assert "---" not in doc.text.split("\n", 1)[0]


def test_erb_markdown_runbook(shared_data):
    path = shared_data / "ops/moj-runbooks/add-a-new-runbook.html.md.erb"
    raw = path.read_bytes()
    assert b"<%= current_page.data.title %>" in raw
    media_type, doc = parse(raw, path.name)
    assert media_type == sniff.ERB_MARKDOWN
    assert doc.title == "Add a new runbook"
    assert doc.text.startswith("# Add a new runbook\n")  # the ERB reference is filled in from front matter
    assert "<%" not in doc.text
    assert doc.metadata["last_reviewed_on"] == "2025-11-24"


def test_every_moj_runbook_parses_without_erb_left(shared_data):
    paths = sorted((shared_data / "ops/moj-runbooks").rglob("*.html.md.erb"))[::10]
    for path in paths:
        _, doc = parse(path.read_bytes(), path.name)
        assert doc.title, path.name
        assert "<%" not in doc.text, path.name


def test_html_main_content():
    media_type, doc = parse((FIXTURES / "sample.html").read_bytes(), "sample.html")
    assert media_type == sniff.HTML
    assert doc.title == "Queue backlog runbook"
    assert doc.metadata["description"] == "What to do when the orders queue backs up"
    text = doc.text
    assert text.startswith("# Orders queue backlog\n")
    assert "[orders dashboard](https://example.org/dashboards/orders)" in text
    assert "1. Check the queue depth with `kubectl -n orders get hpa`.\n2. Look for throttled consumers." in text
    assert "```\nkubectl -n orders scale deploy/billing-worker --replicas=4\n" in text
    assert "| Metric | Warning | Critical |\n| --- | --- | --- |\n| queue depth | 5000 | 20000 |" in text
    assert "> Never purge the queue" in text
    for chrome in ("Ops handbook", "All runbooks", "payments runbook", "Copyright", "analytics", "tracking pixel"):
        assert chrome not in text


def test_html_body_without_main_drops_page_chrome():
    page = (
        b"<html><body><header>Site name</header><nav>menu</nav><h2>Notes</h2><p>First point.</p>"
        b"<ul><li>alpha<ul><li>beta</li></ul></li></ul><footer>legal</footer></body></html>"
    )
    _, doc = parse(page, "notes.html")
    assert doc.text == "## Notes\n\nFirst point.\n\n- alpha\n  - beta\n"
    assert doc.title == "Notes"


def test_pdf():
    media_type, doc = parse((FIXTURES / "sample.pdf").read_bytes(), "sample.pdf")
    assert media_type == sniff.PDF
    assert doc.title == "Capacity plan 2024"
    assert "The ingest cluster runs 12 nodes of type m5.2xlarge." in doc.text
    assert doc.metadata["pages"] == 1


def test_docx():
    media_type, doc = parse((FIXTURES / "sample.docx").read_bytes(), "sample.docx")
    assert media_type == sniff.DOCX
    assert doc.title == "Incident review: DNS outage"
    assert doc.metadata["author"] == "Platform team"
    assert doc.text.startswith("# DNS outage of 3 March\n\nCoreDNS pods were evicted")
    assert "## Actions\n\n- Add a PodDisruptionBudget for CoreDNS.\n- Alert on DNS error rate above 1%." in doc.text
    assert "| Start | End |\n| --- | --- |\n| 09:12 | 09:47 |" in doc.text


def test_plain_text():
    media_type, doc = parse(b"Shift handover\r\n\r\nAll quiet on\tthe \x1b[1mwestern\x1b[0m front.\r\n", "h.txt")
    assert media_type == sniff.TEXT
    assert doc.title == "Shift handover"
    assert doc.text == "Shift handover\n\nAll quiet on\tthe western front.\n"


def test_markdown_keeps_code_but_drops_scripts():
    src = (
        b"# Embedding\n\n```html\n<script src=\"widget.js\"></script>\n```\n\n"
        b"<script>steal()</script>\n\nAfter.\n"
    )
    _, doc = parse(src, "e.md")
    assert '<script src="widget.js"></script>' in doc.text  # inside a code fence: content, kept
    assert "steal()" not in doc.text
    assert doc.text.endswith("After.\n")


@pytest.mark.parametrize(
    ("data", "name", "reason"),
    [
        (b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n", "a.pdf", "PDF"),
        (b"<html><body><script>x()</script></body></html>", "a.html", "HTML page has no readable text"),
        (b"---\ntitle: only\n---\n", "a.md", "Markdown file has no text besides its front matter"),
    ],
)
def test_unreadable_documents_fail_with_a_reason(data, name, reason):
    with pytest.raises(ParseFailed) as err:
        parse(data, name)
    assert reason in err.value.reason
