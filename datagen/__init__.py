"""Synthetic channel data for the DMP, written in the landing layout of docs/landing.md.

`generate(persons, days, seed, out_dir)` simulates persons of five planted personas, their
browsers and app installs, visits, logins, orders, CRM records, social engagements and
marketing campaigns, writes every channel folder, and puts the ground truth in `_truth/`:
`identities.parquet`, `personas.parquet`, `ab_truth.parquet` and `manifest.json` (the
returned summary). Same arguments, same bytes.

What the manifest counts, per channel: `files`, `records_written` (records including re-sent
duplicates), `unique_records`, `duplicates_injected`, `malformed_lines` (lines that are not a
JSON object: truncated JSON, binary garbage and empty lines, split in
`malformed_lines_by_kind`), `impossible_values` and `missing_values`. JSON-lines channels
also give `lines_written`. `bots` lists the bot cookies, which belong to no person.
The dirt and its rates are in datagen.dirt.RATES.
"""

from datagen.generate import generate

__all__ = ["generate"]
