"""Tests of descentlab.schedules (a package so test module names cannot clash with other areas)."""
