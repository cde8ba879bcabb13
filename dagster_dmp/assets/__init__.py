"""Assets per layer: ingestion (dlt) -> warehouse (dbt) -> ml -> reports."""
