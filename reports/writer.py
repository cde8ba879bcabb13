"""Write the report folder: figures as PNG, the tables behind them as CSV, one index.html."""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    import plotnine as p9
    from plotnine.composition import Compose

STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;"
    "color:#222}img{max-width:100%;border:1px solid #eee}table{border-collapse:collapse;"
    "font-size:0.9em}.table{overflow-x:auto}td,th{border:1px solid #ddd;padding:2px 8px;text-align:right}"
)

# Figure sizes are in inches (reports/figures.py): 9 x 4.5 in at 110 dpi is a 990 x 495 px
# image whose 11 pt text is about 17 px high; no figure is wider than 11 in (1,210 px), so
# the page (at most 1,200 px wide) shows every figure at or near its own size at 100% zoom.
DPI = 110


@dataclass
class Section:
    """A heading, a sentence of context, an optional figure and the table behind it."""

    slug: str
    title: str
    text: str
    table: pd.DataFrame
    figure: p9.ggplot | Compose | None = None


def write_report(
    out_dir: Path,
    title: str,
    summary: str,
    sections: list[Section],
    changes: list[str] | None = None,
) -> Path:
    """Figures and CSVs first, index.html last and atomically: a reader never sees a page
    pointing at files that are not there yet. Then the figures and CSVs of sections this run
    no longer has are removed (the folder belongs to the report). `changes`: the "what
    changed since the last run" lines, the first one an introduction, the rest a list."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{STYLE}</style>",
        "</head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{html.escape(summary)}</p>",
    ]
    if changes:
        parts += [
            '<h2 id="changes">What changed since the last run</h2>',
            f"<p>{html.escape(changes[0])}</p>",
        ]
        if len(changes) > 1:
            items = "".join(f"<li>{html.escape(line)}</li>" for line in changes[1:])
            parts.append(f"<ul>{items}</ul>")
    written: set[str] = set()
    for section in sections:
        csv_name = f"{section.slug}.csv"
        written.add(csv_name)
        tmp_csv = out_dir / f"{section.slug}.tmp.csv"
        section.table.to_csv(tmp_csv, index=False)
        tmp_csv.replace(out_dir / csv_name)
        parts += [
            f'<h2 id="{section.slug}">{html.escape(section.title)}</h2>',
            f"<p>{html.escape(section.text)}</p>",
        ]
        if section.figure is not None:
            png_name = f"{section.slug}.png"
            written.add(png_name)
            tmp_png = out_dir / f"{section.slug}.tmp.png"
            section.figure.save(tmp_png, dpi=DPI, verbose=False)
            tmp_png.replace(out_dir / png_name)
            parts.append(f'<img src="{png_name}" alt="{html.escape(section.title)}">')
        # A wide table scrolls inside its box instead of widening the page.
        parts += [
            '<div class="table">',
            section.table.head(20).to_html(index=False, border=0, float_format="{:,.2f}".format),
            "</div>",
        ]
        parts.append(f'<p><a href="{csv_name}">Download the full table (CSV)</a></p>')
    parts.append("</body></html>")
    index = out_dir / "index.html"
    tmp = index.with_suffix(".html.tmp")
    tmp.write_text("\n".join(parts), encoding="utf-8")
    tmp.replace(index)
    for stale in [*out_dir.glob("*.png"), *out_dir.glob("*.csv")]:
        if stale.name not in written:
            stale.unlink()
    return index
