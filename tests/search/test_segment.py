"""Segments of the in-memory inverted index: what ``build`` puts in them and what ``merge`` keeps."""

from __future__ import annotations

import threading

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from search import segment
from search.segment import Segment, Vocabulary, bigram_key
from search.text import stems

TW = 2.0


def postings(seg: Segment, vocab: Vocabulary) -> dict[tuple[str, ...], dict[int, float]]:
    """``{(stem,) or (stem, stem): {chunk id: weighted frequency}}``: a segment in readable form."""
    names = {i: s for s, i in vocab._ids.items()}
    out: dict[tuple[str, ...], dict[int, float]] = {}
    for i, key in enumerate(seg.keys.tolist()):
        name = (names[key],) if key < 2**32 else (names[(key >> 32) - 1], names[key & 0xFFFFFFFF])
        a, b = int(seg.indptr[i]), int(seg.indptr[i + 1])
        out[name] = {int(seg.doc_ids[d]): float(f) for d, f in zip(seg.docs[a:b], seg.tf[a:b], strict=True)}
    return out


def naive(rows: list[tuple[int, str, str]]) -> dict[tuple[str, ...], dict[int, float]]:
    """The same postings counted the slow way, field by field (what FTS5 sees in its two columns)."""
    out: dict[tuple[str, ...], dict[int, float]] = {}
    for cid, title, body in rows:
        for field, weight in ((title, TW), (body, 1.0)):
            terms = stems(field)
            keys = [(t,) for t in terms] + [(a, b) for a, b in zip(terms, terms[1:], strict=False)]
            for key in keys:
                per = out.setdefault(key, {})
                per[cid] = per.get(cid, 0.0) + weight
    return out


def test_build_weights_title_occurrences_and_counts_tokens() -> None:
    vocab = Vocabulary()
    seg = segment.build([(7, "Kafka outage", "The Kafka broker failed; kafka restarted.")], vocab, TW)
    got = postings(seg, vocab)
    assert got[("kafka",)] == {7: TW + 2.0}  # once in the title, twice in the text
    assert got[("outag",)] == {7: TW}
    assert got[("kafka", "outag")] == {7: TW}
    assert got[("kafka", "broker")] == {7: 1.0}
    # stopwords are not tokens: "the" neither counts in the length nor breaks a pair
    assert seg.doc_len.tolist() == [2 + 5]  # kafka outag | kafka broker fail kafka restart
    assert ("outag", "kafka") not in got  # no pair across the title/text boundary
    assert seg.doc_ids.tolist() == [7]


def test_stopwords_are_skipped_inside_a_phrase_as_in_the_full_text_table() -> None:
    vocab = Vocabulary()
    seg = segment.build([(1, "", "Bank of America")], vocab, TW)
    assert postings(seg, vocab)[("bank", "america")] == {1: 1.0}


def test_documents_are_numbered_in_chunk_id_order() -> None:
    vocab = Vocabulary()
    seg = segment.build([(30, "", "gamma"), (10, "", "alpha"), (20, "", "beta beta")], vocab, TW)
    assert seg.doc_ids.tolist() == [10, 20, 30]
    assert seg.doc_len.tolist() == [1.0, 2.0, 1.0]
    docs, tf = seg.postings(vocab.get("beta"))  # type: ignore[arg-type, misc]
    assert docs.tolist() == [1]
    assert tf.tolist() == [2.0]
    assert seg.postings(12345) is None
    pos, found = seg.local(np.array([20, 25, 40], np.int64))
    assert found.tolist() == [True, False, False]
    assert int(pos[0]) == 1


def test_empty_and_wordless_chunks() -> None:
    vocab = Vocabulary()
    assert segment.empty().n_docs == 0
    seg = segment.build([(5, "", ""), (6, "the", "of")], vocab, TW)
    assert seg.n_docs == 2
    assert seg.doc_len.tolist() == [0.0, 0.0]
    assert seg.keys.shape[0] == 0
    assert segment.build([], vocab, TW).n_docs == 0


def test_bigram_keys_never_collide_with_term_ids() -> None:
    assert bigram_key(0, 0) == 2**32
    assert bigram_key(0, 5) != bigram_key(5, 0)
    assert bigram_key(3, 4) >> 32 == 4
    assert bigram_key(3, 4) & 0xFFFFFFFF == 4


def test_vocabulary_hands_out_each_id_once_under_threads() -> None:
    vocab = Vocabulary()
    words = [f"w{i}" for i in range(2000)]
    results: list[dict[str, int]] = []
    barrier = threading.Barrier(8)

    def work(seed: int) -> None:
        order = words[seed:] + words[:seed]
        barrier.wait()
        results.append(dict(zip(order, vocab.ids(order), strict=True)))

    threads = [threading.Thread(target=work, args=(i * 250,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8
    assert len(vocab) == len(words)
    kept = {w: vocab.get(w) for w in words}
    assert sorted(kept.values()) == list(range(len(words)))  # type: ignore[type-var]
    for got in results:  # every thread was given the id the vocabulary kept for each word
        assert got == kept


TEXTS = st.lists(st.sampled_from(["alpha", "beta", "gamma", "delta", "the", "of", "Beta", "épsilon"]), max_size=8)
ROWS = st.lists(st.tuples(TEXTS, TEXTS), min_size=0, max_size=12)


@settings(max_examples=60, deadline=None)
@given(first=ROWS, second=ROWS, drop=st.lists(st.booleans(), max_size=12))
def test_merge_equals_a_fresh_build_of_the_live_documents(
    first: list[tuple[list[str], list[str]]], second: list[tuple[list[str], list[str]]], drop: list[bool]
) -> None:
    rows_a = [(2 * i, " ".join(t), " ".join(b)) for i, (t, b) in enumerate(first)]
    rows_b = [(2 * i + 1, " ".join(t), " ".join(b)) for i, (t, b) in enumerate(second)]
    vocab = Vocabulary()
    a, b = segment.build(rows_a, vocab, TW), segment.build(rows_b, vocab, TW)
    alive = np.array([not (drop[i] if i < len(drop) else False) for i in range(a.n_docs)], np.bool_)
    merged = segment.merge([(a, alive), (b, None)])
    live = [r for r, ok in zip(rows_a, alive.tolist(), strict=True) if ok] + rows_b
    fresh = segment.build(live, vocab, TW)
    assert merged.doc_ids.tolist() == fresh.doc_ids.tolist() == sorted(r[0] for r in live)
    assert merged.doc_len.tolist() == fresh.doc_len.tolist()
    assert merged.keys.tolist() == fresh.keys.tolist()
    assert postings(merged, vocab) == postings(fresh, vocab) == naive(live)
