"""Tests of the spectrum-nas package and its repository."""
