"""Models on profile data: DataFrames in, results out; no orchestration here.

scipy and scikit-learn are imported inside the functions that use them (plotnine likewise in
reports/): every Dagster process (each run, the UI's code server) imports these modules to
load the definitions, and those three libraries took 1.4 of its 5.4 s.
"""
