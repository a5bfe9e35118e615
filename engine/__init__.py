"""Runs: what to run (RunSpec), how it went (RunResult, with stages), and the executor between them.

Knows no Django, HTTP or websocket, and stores nothing (a test says so). The executor
enforces the output cap, the timeouts and the verdicts, and reaches a sandbox only
through a Backend: `backends.local` runs them on this host.
"""
