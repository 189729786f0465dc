"""Builders and waits the test packages share (import as ``tests.helpers.<module>``; the repository root is on
pytest's path): databases with the sample data, the SPX bars, CLI runners, waits on explicit conditions, a
broker topology of one's own, Ray pickling by value."""
