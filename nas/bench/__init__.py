"""Benches: every point of a small space trained once, and searches replayed against them."""
