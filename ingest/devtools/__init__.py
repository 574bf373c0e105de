"""Development tools: synthetic stream data, the stream stand-in, the demo.

Nothing in production imports this package; the tests, the demo and the benchmark do.
"""
