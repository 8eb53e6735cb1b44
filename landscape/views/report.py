"""``report.html``: one self-contained page of a run's output folder that opens offline.

It embeds plotly.js (the bundle shipped inside the ``plotly`` package on PyPI, found without importing plotly), so
no network is needed: the run's provenance and history, interactive 3-D surfaces with the training path draped on
them, contours with the projected path, 1-D paths at every level, the robust/ambient table, training metrics and
norms, filter correlations, curvature, the figures already drawn and a link to every file. Files still being
computed show their progress; a file that cannot be read is named with the reason. Everything is drawn from the
files alone, so the report can be rebuilt at any time (``landscape report DIR``).

Example:
    >>> import tempfile
    >>> out = tempfile.mkdtemp()
    >>> write_report(out).name
    'report.html'
"""
from __future__ import annotations

import base64
import html
import io
import json
import logging
from pathlib import Path
from typing import Any, Callable

from ..core.errors import ConfigError, LandscapeError
from ..core.optional import package_file, require
from ..core.version import __version__
from ..io.hdf5 import (CORRELATION_SCHEMA, CURVATURE_SCHEMA, PATH_SCHEMA, SAMPLE_SCHEMA, SURFACE_SCHEMA,
                       TOPOLOGY_SCHEMA, TRAJECTORY_SCHEMA, file_schema, replaced_atomically)
from .report_data import (correlation_section, curvature_section, paths_section, surface_section,
                          topology_section, trajectory_section)
from .report_samples import sample_section

__all__ = ["write_report", "build_report", "REPORT_NAME"]

_log = logging.getLogger(__name__)

REPORT_NAME = "report.html"

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#1f3b57;color:#fff;padding:14px 24px}header h1{margin:0 0 4px;font-size:22px}
header p{margin:2px 0;font-size:13px;opacity:.9}nav a{color:#cfe3ff;margin-right:14px;font-size:13px}
main{padding:8px 24px 40px}section{background:#fff;border:1px solid #e2e2e2;border-radius:6px;margin:14px 0;
padding:10px 16px}h2{font-size:18px;margin:6px 0 8px}h3{font-size:14px;margin:12px 0 4px;color:#444}
table{border-collapse:collapse;font-size:13px;margin:6px 0}td,th{border:1px solid #ddd;padding:3px 8px;
text-align:left}th{background:#f0f3f6}.plot{width:100%;min-height:420px}.grid{display:grid;
grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:8px}.note{color:#8a5a00;font-size:13px}
.bad{color:#b00020;font-size:13px}.thumbs img{max-width:320px;margin:4px;border:1px solid #ddd}
code{font-size:12px}.progress{font-weight:600}
"""
# Errors of the page itself are kept in #report-errors (tests and users see what failed to draw).
_CAPTURE = """window.__reportErrors=[];window.addEventListener('error',function(e){window.__reportErrors.push(
String(e.message||e))});window.addEventListener('unhandledrejection',function(e){window.__reportErrors.push(
'unhandled: '+String(e.reason))});(function(){var ce=console.error;console.error=function(){
window.__reportErrors.push(Array.prototype.join.call(arguments,' '));ce.apply(console,arguments)}})();"""
_RENDER = """(function(){var done=[];FIGURES.forEach(function(f){var el=document.getElementById(f.id);
var layout=Object.assign({margin:{l:60,r:20,t:40,b:50},title:{text:f.title,font:{size:13},x:0.01,xanchor:'left'}},f.layout);
try{done.push(Plotly.newPlot(el,f.data,layout,{responsive:true,displaylogo:false,displayModeBar:'hover'}))}catch(e){
window.__reportErrors.push(f.id+': '+e)}});Promise.all(done).catch(function(e){window.__reportErrors.push(
String(e))}).finally(function(){var out=document.getElementById('report-errors');
out.textContent=JSON.stringify(window.__reportErrors);out.hidden=!window.__reportErrors.length;
document.body.dataset.rendered=window.__reportErrors.length?'errors':'ok'})})();"""

_BUILDERS: dict[str, Callable[[Path], dict[str, Any]]] = {
    SURFACE_SCHEMA: surface_section, TRAJECTORY_SCHEMA: trajectory_section, CURVATURE_SCHEMA: curvature_section,
    CORRELATION_SCHEMA: correlation_section, TOPOLOGY_SCHEMA: topology_section, SAMPLE_SCHEMA: sample_section}
_TITLES = {"surface": "Loss surface", "trajectory": "Training", "curvature": "Curvature",
           "correlation": "Filter correlations", "paths": "Interpolation paths", "topology": "Topology",
           "sample": "k-dimensional sample"}


def _e(x: Any) -> str:
    return html.escape(str(x))


def _table(rows: list[tuple[Any, ...]], head: tuple[str, ...] | None = None) -> str:
    h = "<tr>" + "".join(f"<th>{_e(c)}</th>" for c in head) + "</tr>" if head else ""
    return "<table>" + h + "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in rows) \
        + "</table>"


def _json(obj: Any) -> str:
    return json.dumps(obj, allow_nan=False, separators=(",", ":"), default=str).replace("</", "<\\/")


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def _shown(value: Any) -> str:
    """A provenance value as a reader wants it: "—" for a setting not given, never "None"."""
    return "—" if value is None or value == "" else str(value)


def data_description(data: dict[str, Any]) -> str:
    """A data set as configured, naming only what was set.

    Example:
        >>> data_description({"name": "digits", "root": None, "train_subset": None, "test_subset": None})
        'digits (all samples)'
        >>> data_description({"name": "mnist", "root": "/data/mnist", "train_subset": 200, "test_subset": None})
        'mnist (root /data/mnist, first 200 training samples)'
    """
    parts = [f"root {data['root']}"] if data.get("root") else []
    for key, what in (("train_subset", "training"), ("test_subset", "test")):
        if data.get(key) is not None:
            mode = data.get("subset_mode") or "first"
            parts.append(f"{'first' if mode == 'first' else 'random'} {data[key]} {what} samples")
    if data.get("kwargs"):
        parts.append(", ".join(f"{k} {v}" for k, v in data["kwargs"].items()))
    if not (data.get("train_subset") is not None or data.get("test_subset") is not None):
        parts.append("all samples")
    return f"{data.get('name')} ({', '.join(parts)})"


def _provenance(out: Path, sections: list[dict[str, Any]]) -> str:
    parts = []
    job = json.loads((out / "job.json").read_text()) if (out / "job.json").is_file() else {}
    if job:
        model, data = job.get("model", {}), job.get("data", {})
        rows = [("job", job.get("job", {}).get("name", "?") if isinstance(job.get("job"), dict) else job.get("job")),
                ("model", f"{model.get('name')} {model.get('kwargs') or ''}"),
                ("data", data_description(data)),
                ("training", ", ".join(f"{k} {v}" for k, v in (job.get("train") or {}).items()
                                       if k in ("epochs", "lr", "optimizer", "batch_size", "seed"))),
                ("evaluation", ", ".join(f"{k} {v}" for k, v in (job.get("evaluate") or {}).items()
                                         if k in ("split", "batch_size", "precision", "points_per_batch")))]
        parts.append("<h3>Job</h3>" + _table(rows))
    rows = []
    for s in sections:
        if s["kind"] in ("surface", "sample"):
            i = s["inputs"]
            data = i.get("data", {})
            seeded = i.get("directions") in (None, "random")  # PCA, Hessian or checkpoint directions draw nothing
            rows.append((s["file"], _shown(i.get("model")),
                         data_description(data) if isinstance(data, dict) else _shown(data), _shown(i.get("split")),
                         _shown(i.get("center")), _shown(i.get("directions")), _shown(i.get("norm")),
                         _shown(i.get("ignore")), _shown(i.get("seed")) if seeded else "not drawn", s["progress"]))
    if rows:
        parts.append("<h3>Surfaces and samples</h3>" + _table(rows, ("file", "model", "data", "split", "centre", "directions",
                                                         "normalisation", "ignore", "seed", "progress")))
    runs = [(s.get("file"), r.get("started"), r.get("points"), f"{float(r.get('seconds', 0)):.1f}", r.get("status"),
             r.get("ranks"), r.get("device"), r.get("batch_mode"), r.get("host"),
             " ".join(f"{k.removeprefix('slurm_')} {r[k]}" for k in ("slurm_job_id", "slurm_array_task_id",
                                                                    "slurm_restart_count") if k in r))
            for s in sections for r in s.get("runs", [])]
    if runs:
        parts.append("<h3>Run history</h3>" + _table(runs, ("file", "started", "points", "seconds", "status", "ranks",
                                                             "device", "batch mode", "host", "Slurm")))
    parts.append(f"<p>report written by landscape {_e(__version__)}</p>")
    return "".join(parts)


def _robust_table(out: Path) -> str:
    p = out / "layers_robust_ambient.json"
    if not p.is_file():
        return ""
    t = json.loads(p.read_text())
    rows = [(r["layer"], f"{r['loss_final']:.4g}", f"{r['loss_reset']:.4g}", f"{r['accuracy_final']:.4g}",
             f"{r['accuracy_reset']:.4g}", f"{r['damage']:.4g}", f"{r['distance']:.4g}", r["class"])
            for r in t.get("layers", [])]
    return (f"<p>Each layer reset to {_e(t.get('start'))}; robust when the {_e(t.get('measure'))} is at least "
            f"{_e(t.get('threshold'))}.</p>" + _table(rows, ("layer", "loss final", "loss reset", "accuracy final",
                                                             "accuracy reset", "damage", "distance", "class")))


def _files(out: Path, report: Path) -> str:
    files = sorted(p for p in out.rglob("*") if p.is_file() and p != report)
    top = [p for p in files if p.parent == out]
    deeper = [p for p in files if p.parent != out]
    link = lambda p: (f'<a href="{_e(p.relative_to(out).as_posix())}">{_e(p.relative_to(out).as_posix())}</a>'  # noqa
                      f" <small>{_size(p.stat().st_size)}</small>")
    body = "<ul>" + "".join(f"<li>{link(p)}</li>" for p in top) + "</ul>"
    if deeper:
        body += (f"<details><summary>{len(deeper)} files in sub-folders</summary><ul>"
                 + "".join(f"<li>{link(p)}</li>" for p in deeper) + "</ul></details>")
    pngs = [p for p in top if p.suffix == ".png"]
    if pngs:  # embedded: the page shows them also when copied alone; the link opens the full file beside it
        body += ("<details><summary>figures (PNG)</summary><div class='thumbs'>" + "".join(
            f'<a href="{_e(p.name)}"><img src="{thumbnail_uri(p)}" alt="{_e(p.name)}" title="{_e(p.name)}"></a>'
            for p in pngs) + "</div></details>")
    return body


def thumbnail_uri(path: Path, width: int = 640) -> str:
    """A PNG as a ``data:`` URI, scaled down to ``width`` pixels and 256 colours (a thumbnail the page carries in
    itself: about 30 kB for a figure of the demo).

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> p = Path(tempfile.mkdtemp()) / "a.png"
        >>> Image.new("RGB", (1800, 750), "white").save(p)
        >>> uri = thumbnail_uri(p)
        >>> uri.startswith("data:image/png;base64,"), Image.open(io.BytesIO(base64.b64decode(uri[22:]))).size
        (True, (640, 267))
    """
    image_module = require("PIL.Image", "plot")
    with image_module.open(path) as im:
        im = im.convert("RGB")
        if im.width > width:
            im = im.resize((width, max(1, round(im.height * width / im.width))), image_module.LANCZOS)
        buf = io.BytesIO()
        im.quantize(256).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def build_report(out_dir: str | Path) -> str:
    """The report's HTML text for an output folder (see :func:`write_report`)."""
    out = Path(out_dir)
    if not out.is_dir():
        raise ConfigError(f"report: expected an output folder, got {out} (not a folder)")
    sections: list[dict[str, Any]] = []
    problems: list[str] = []
    path_files: list[Path] = []
    for f in sorted(out.glob("*.h5")):
        try:
            schema = file_schema(f)
            if schema == PATH_SCHEMA:
                path_files.append(f)
            elif schema in _BUILDERS:
                sections.append(_BUILDERS[schema](f))
            else:
                problems.append(f"{f.name}: not shown (not a landscape result file, or not readable at this moment)")
        except (LandscapeError, OSError, KeyError, ValueError) as exc:  # still being written, or damaged
            problems.append(f"{f.name}: not shown ({type(exc).__name__}: {exc})")
    if path_files:
        try:
            sections.append(paths_section(path_files))
        except (LandscapeError, OSError, KeyError, ValueError) as exc:
            problems.append(f"path files: not shown ({type(exc).__name__}: {exc})")
    order = ("surface", "sample", "paths", "topology", "curvature", "trajectory", "correlation")
    sections.sort(key=lambda s: order.index(s["kind"]))
    figures: list[dict[str, Any]] = []
    body: list[str] = []
    nav: list[str] = []
    for k, s in enumerate(sections):
        sid = f"sec{k}"
        title = _TITLES[s["kind"]] + (f": {s['file']}" if s.get("file") else "")
        nav.append(f'<a href="#{sid}">{_e(title)}</a>')
        html_parts = [f'<section id="{sid}"><h2>{_e(title)}</h2>']
        if "progress" in s:
            html_parts.append(f'<p class="progress">progress: {_e(s["progress"])}'
                              + (f'; curvature maps {_e(s["curvature_progress"])}' if "curvature_progress" in s
                                 else "") + "</p>")
        for note in s.get("notes", []):
            html_parts.append(f'<p class="note">{_e(note)}</p>')
        if s.get("rows"):
            html_parts.append(_table(s["rows"]))
        html_parts.append('<div class="grid">')
        for f in s["figures"]:
            fid = f"fig{len(figures)}"
            wide = f["data"] and f["data"][0]["type"] in ("surface", "scatter3d")
            html_parts.append(f'<div class="plot" id="{fid}"' + (' style="grid-column:1/-1"' if wide else "")
                              + "></div>")
            figures.append({"id": fid, **f})
        html_parts.append("</div></section>")
        body.append("".join(html_parts))
    robust = _robust_table(out)
    if robust:
        nav.append('<a href="#robust">Robust and ambient layers</a>')
        body.append(f'<section id="robust"><h2>Robust and ambient layers</h2>{robust}</section>')
    report = out / REPORT_NAME
    body.insert(min(1, len(body)), f'<section id="provenance"><h2>Provenance</h2>{_provenance(out, sections)}'
                                   "</section>")
    nav.insert(min(1, len(nav)), '<a href="#provenance">Provenance</a>')
    nav.append('<a href="#files">Files</a>')
    body.append(f'<section id="files"><h2>Files</h2>{_files(out, report)}</section>')
    unfinished = [s["file"] for s in sections if s["kind"] in ("surface", "sample")
                  and "status complete" not in s["progress"]]
    status = (f"in progress: {', '.join(unfinished)}" if unfinished else "complete")
    plotly_js = package_file("plotly", "package_data/plotly.min.js", "plot").read_text(encoding="utf-8")
    return "".join([
        '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        f"<title>landscape report: {_e(out.resolve().name)}</title><style>{_STYLE}</style>",
        f"<script>{_CAPTURE}</script><script>{plotly_js}</script></head><body>",
        f"<header><h1>landscape report: {_e(out.resolve().name)}</h1>",
        f"<p>{_e(out.resolve())} — {len(sections)} result group(s), {_e(status)}</p><nav>{''.join(nav)}</nav>",
        "</header><main>",
        "".join(f'<p class="bad">{_e(p)}</p>' for p in problems),
        "".join(body),
        '<pre id="report-errors" class="bad" hidden></pre></main>',
        f"<script>var FIGURES={_json(figures)};</script><script>{_RENDER}</script></body></html>"])


def write_report(out_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write ``OUT_DIR/report.html`` (or ``out``) for an output folder and return its path; replaced atomically,
    so a report open in a browser is never half written."""
    target = Path(out) if out else Path(out_dir) / REPORT_NAME
    text = build_report(out_dir)
    with replaced_atomically(target) as tmp:  # a failed write (a full disk) leaves no temporary file behind
        tmp.write_text(text, encoding="utf-8")
    _log.info("wrote %s", target)
    return target
