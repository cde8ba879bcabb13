"""Channel ingestion: landing-zone files -> DuckDB `raw` dataset, through dlt."""
