"""Tests of nas.answer, mirroring its modules."""
