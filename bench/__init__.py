"""Benchmark scripts. They print figures; they are never collected as tests."""
