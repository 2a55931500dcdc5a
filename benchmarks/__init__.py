"""Synthetic catalogs and the benchmark runs over them."""
