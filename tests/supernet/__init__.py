"""Tests of nas.supernet, mirroring its modules."""
