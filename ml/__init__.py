"""Models on profile data: DataFrames in, results out; no orchestration here."""
