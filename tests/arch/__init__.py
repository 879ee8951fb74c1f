"""Tests of nas.arch, mirroring its modules."""
