"""Where a figure goes: checked before any work (a folder in the way, a path under a file, a format
matplotlib cannot write, a place that is not writable), written atomically (nothing half-written),
as an image or as a self-contained HTML page with sortable tables.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from ..arch.budget import human
from ..errors import ResnasError
from ..files import check_writable, write_atomic

UNITS = {"flops": "FLOPs", "params": "parameters", "acts": "activations"}  # cells shown as 1.23 G


def formats() -> list[str]:
    """The file suffixes matplotlib writes, and html (a page around a PNG)."""
    from matplotlib.backend_bases import FigureCanvasBase

    return sorted({*FigureCanvasBase.get_supported_filetypes(), "html"})


def check_plot_file(path: str | Path, field: str = "plot") -> Path:
    """Refuse, before anything is drawn, a plot file that cannot be written; nothing is created."""
    path = Path(path)
    if path.is_dir():
        raise ResnasError(f"{path} is a folder; give a file name such as {path / 'plot.png'}", field=field)
    if not path.suffix:  # matplotlib would add .png and the message would name a file that is not there
        raise ResnasError(f"{path} has no suffix; end it in .png, .svg, .pdf or .html", field=field)
    suffix = path.suffix[1:].lower()
    if suffix not in formats():
        raise ResnasError(f"cannot write {path}: format {suffix!r} is not one of {', '.join(formats())}", field=field)
    return check_writable(path, field=field)


def save(fig, path: str | Path, title: str = "", tables_html: str = "", field: str = "plot") -> Path:
    """PNG (or any matplotlib format) by suffix; `.html` is a self-contained page: the figure and tables."""
    from matplotlib import pyplot as plt

    try:
        path = check_plot_file(path, field)
        suffix = path.suffix[1:].lower()
        if suffix == "html":
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=130)
            img = base64.b64encode(buf.getvalue()).decode()
            page = PAGE.format(title=html.escape(title), img=img, tables=tables_html).encode()
            write_atomic(path, lambda f: f.write(page), field=field)
        else:
            write_atomic(path, lambda f: fig.savefig(f, format=suffix, dpi=130), field=field)
    finally:
        plt.close(fig)
    return path


def html_table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    """A sortable HTML table (click a header) of `rows`, columns as (title, key); FLOPs, params and
    activations in the project's units, the exact count in the cell's tooltip."""
    head = "".join(f"<th>{html.escape(t)}</th>" for t, _ in columns)
    body = "".join("<tr>" + "".join(_cell(k, r.get(k)) for _, k in columns) + "</tr>" for r in rows)
    return f"<table class='sortable'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(key: str, v) -> str:
    if key in UNITS and isinstance(v, (int, float)) and not isinstance(v, bool):
        exact = f"{v:,} {UNITS[key]}"
        return f"<td data-sort='{v}' title='{html.escape(exact)}'>{html.escape(human(v))}</td>"
    return f"<td>{html.escape(_text(v))}</td>"


def _text(v) -> str:
    if v is None:
        return "-"
    return f"{v:.2f}" if isinstance(v, float) else str(v)


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em}} table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}} th{{cursor:pointer;background:#f3f3f3}}
td[title]{{text-decoration:underline dotted #999}} img{{max-width:100%}}</style></head>
<body><h1>{title}</h1><img src="data:image/png;base64,{img}" alt="{title}">{tables}
<script>
document.querySelectorAll('table.sortable th').forEach((th, i) => th.addEventListener('click', () => {{
  const body = th.closest('table').tBodies[0], up = th.dataset.up !== '1';
  const key = r => {{ const c = r.cells[i], t = c.dataset.sort ?? c.textContent, n = parseFloat(t);
                      return isNaN(n) ? t : n; }};
  [...body.rows].sort((a, b) => (key(a) > key(b) ? 1 : key(a) < key(b) ? -1 : 0) * (up ? 1 : -1))
    .forEach(r => body.appendChild(r));
  th.dataset.up = up ? '1' : '0';
}}));
</script></body></html>
"""
