"""Privacy requests: erasure (`dmp forget`) across the warehouse, serving, exports and reports."""
