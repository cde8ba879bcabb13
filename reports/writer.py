"""Write the report folder: figures as PNG, the tables behind them as CSV, one index.html."""

import html
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import plotnine as p9

STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;"
    "color:#222}img{max-width:100%;border:1px solid #eee}table{border-collapse:collapse;"
    "font-size:0.9em}td,th{border:1px solid #ddd;padding:2px 8px;text-align:right}"
)


@dataclass
class Section:
    """A heading, a sentence of context, an optional figure and the table behind it."""

    slug: str
    title: str
    text: str
    table: pd.DataFrame
    figure: p9.ggplot | None = None


def write_report(out_dir: Path, title: str, summary: str, sections: list[Section]) -> Path:
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
    for section in sections:
        csv_name = f"{section.slug}.csv"
        section.table.to_csv(out_dir / csv_name, index=False)
        parts += [
            f'<h2 id="{section.slug}">{html.escape(section.title)}</h2>',
            f"<p>{html.escape(section.text)}</p>",
        ]
        if section.figure is not None:
            png_name = f"{section.slug}.png"
            section.figure.save(out_dir / png_name, dpi=110, verbose=False)
            parts.append(f'<img src="{png_name}" alt="{html.escape(section.title)}">')
        parts.append(
            section.table.head(20).to_html(index=False, border=0, float_format="{:,.2f}".format)
        )
        parts.append(f'<p><a href="{csv_name}">Download the full table (CSV)</a></p>')
    parts.append("</body></html>")
    index = out_dir / "index.html"
    tmp = index.with_suffix(".html.tmp")
    tmp.write_text("\n".join(parts), encoding="utf-8")
    tmp.replace(index)
    return index
