"""Retrieval: lexical (BM25), dense (sentence embeddings), fusion, the chunk index built from pages and
sources, and the query tiers. It uses store's database and git store; nothing below it imports it."""
