"""Benchmarks: datasets, runners and the tables they write (CSV of raw rows + Markdown summary)."""
