"""Profiles on demand: one person's profile, audiences and recommendations, read from a
published read-only snapshot of the serving marts (never from the warehouse a run writes).
Plain Python over DuckDB; no orchestration here."""
