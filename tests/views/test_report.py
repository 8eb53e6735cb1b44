"""The HTML report: built from a real (shortened demo) output folder, opened in a real headless chromium: it
loads with no console errors, the screenshot is not blank and shows the 3-D surface; it opens offline, links
every file, and shows partial files with their progress."""
import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from landscape.core.grid import Grid
from landscape.io.surface_file import SurfaceStore
from landscape.views.report import REPORT_NAME

pytestmark = pytest.mark.browser


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    if os.environ.get("CI") or os.environ.get("LANDSCAPE_CI"):
        pytest.fail("chromium (Debian package chromium) must be installed in CI; .ci/run installs it")
    pytest.skip("no headless browser installed (apt-get install chromium)")


def open_page(page: Path, tmp: Path, screenshot: Path | None = None, size=(1280, 1400)) -> str:
    """The page's DOM after its scripts ran (or a screenshot), from a real headless chromium; software WebGL."""
    args = [chromium(), "--headless", "--no-sandbox", "--disable-dev-shm-usage", "--enable-unsafe-swiftshader",
            "--use-angle=swiftshader", f"--user-data-dir={tmp / 'profile'}", f"--window-size={size[0]},{size[1]}",
            "--virtual-time-budget=30000", "--hide-scrollbars"]
    args += [f"--screenshot={screenshot}"] if screenshot else ["--dump-dom"]
    r = subprocess.run(args + [page.resolve().as_uri()], capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


def page_errors(dom: str) -> list[str]:
    m = re.search(r'<pre id="report-errors"[^>]*>(.*?)</pre>', dom, re.S)
    assert m, "the report has no error box: it did not load"
    return json.loads(m.group(1) or "[]")


LAYOUT_CHECK = """<script>(function(){var t=setInterval(function(){if(!document.body.dataset.rendered)return;
clearInterval(t);var out=[];function box(e){return e.getBoundingClientRect()}
function meets(a,b){return a.left<b.right-1&&b.left<a.right-1&&a.top<b.bottom-1&&b.top<a.bottom-1}
document.querySelectorAll('.js-plotly-plot').forEach(function(el){var r={id:el.id,problems:[]};
var card=box(el.closest('section')),b=box(el);
if(b.left<card.left-1||b.right>card.right+1||b.top<card.top-1||b.bottom>card.bottom+1)r.problems.push('outside its card');
if(b.width<200||b.height<150)r.problems.push('too small '+b.width+'x'+b.height);
var data=el.data||[];if(!data.length||!data.some(function(d){var v=d.z||d.y||d.x||[];return v.length>0}))
r.problems.push('no data drawn');
var drawn=el.querySelectorAll('g.trace, g.contour, g.hm, .gl-container canvas');
if(!drawn.length)r.problems.push('nothing rendered');
el.querySelectorAll('.legend').forEach(function(lg){el.querySelectorAll('.xtick text, .ytick text, .y2tick text, .g-ytitle, .g-y2title').forEach(
function(tx){if(tx.textContent&&meets(box(lg),box(tx)))r.problems.push('legend over "'+tx.textContent+'"')})});
out.push(r)});var imgs=Array.prototype.slice.call(document.querySelectorAll('.thumbs img'));
var shown=imgs.filter(function(i){return i.complete&&i.naturalWidth>0&&i.src.indexOf('data:')===0}).length;
var pre=document.createElement('pre');pre.id='layout-check';
pre.textContent=JSON.stringify({figures:out,thumbnails:[shown,imgs.length]});
document.body.appendChild(pre)},100)})();</script>"""


@pytest.fixture(scope="module")
def demo_out(short_demo):
    return short_demo[0]  # the shortened demo, run once for the session (conftest)


def test_demo_output_report_loads_without_errors_and_shows_the_surface(demo_out, tmp_path):
    """In the real browser: no errors; each figure has data and rendered traces, lies inside its card, and no
    legend covers an axis (the training chart's legend once hid its accuracy axis); the surface is on screen."""
    page = demo_out / REPORT_NAME
    assert page.is_file()  # written at the end of the run
    checked = tmp_path / "checked.html"  # the page with a script that measures its figures once they are drawn
    checked.write_text(page.read_text().replace("</body>", LAYOUT_CHECK + "</body>"))
    dom = open_page(checked, tmp_path)
    assert page_errors(dom) == []
    m = re.search(r'<pre id="layout-check">(.*?)</pre>', dom, re.S)
    assert m, "the layout check did not run (the page never finished rendering)"
    check = json.loads(html.unescape(m.group(1)))
    figures = check["figures"]
    assert len(figures) >= 10
    problems = {f["id"]: f["problems"] for f in figures if f["problems"]}
    assert not problems, problems
    shown, thumbnails = check["thumbnails"]  # embedded: they show wherever the page is copied
    assert thumbnails == len(list(demo_out.glob("*.png"))) >= 10 and shown == thumbnails
    assert 'data-rendered="ok"' in dom
    n_divs = len(re.findall(r' id="fig\d+"', dom))
    assert n_divs >= 10 and dom.count('class="plot-container plotly"') == n_divs  # every figure drawn
    for text in ("Provenance", "Run history", "Robust and ambient layers", "lenet5", "digits", "filter",
                 "λmax", "path_linear.h5", "Curvature", "k-dimensional sample", "points along c0, c1, c2"):
        assert text in dom, text
    shot = tmp_path / "shot.png"
    open_page(page, tmp_path, shot)
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("RGB")).astype(float)
    assert img.shape[:2] == (1400, 1280) and img.std() > 20  # not blank
    # the 3-D surface (first figure, below the header) is drawn in viridis: many pixels far from white/grey
    # and close to the colour map's blue-green-yellow, in the top part of the page
    top = img[100:900]
    chroma = top.max(2) - top.min(2)
    viridis_like = (chroma > 60) & (top[..., 1] > top[..., 0])  # green above red: viridis, not the header
    assert viridis_like.mean() > 0.05, viridis_like.mean()


def test_report_is_offline_and_links_every_file(demo_out):
    text = (demo_out / REPORT_NAME).read_text()
    assert not re.search(r'<script[^>]+src=|<link[^>]+href="https?:', text)  # nothing fetched
    assert "Plotly" in text and len(text) > 1_000_000  # plotly.js embedded
    hrefs = set(re.findall(r'href="([^"#][^"]*)"', text))
    files = {p.relative_to(demo_out).as_posix() for p in demo_out.rglob("*") if p.is_file()} - {REPORT_NAME}
    assert files and files <= hrefs, sorted(files - hrefs)[:5]


def test_report_copied_alone_still_shows_every_figure(demo_out):
    """Mailed or attached alone, the page keeps its figure thumbnails: each is embedded, one per PNG of the folder."""
    import base64
    import io

    from PIL import Image

    text = (demo_out / REPORT_NAME).read_text()
    sources = re.findall(r'<img src="([^"]+)"', text)
    pngs = sorted(p.name for p in demo_out.glob("*.png"))
    assert len(sources) == len(pngs) >= 10
    for src in sources:
        assert src.startswith("data:image/png;base64,"), src[:60]
        img = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        assert img.width <= 640 and img.height > 50 and len(np.unique(np.asarray(img.convert("L")))) > 5  # not blank


def test_surface_figures_fill_their_cards_over_the_data_extent(demo_out):
    """3-D: a wide flat box from a low camera (not a cube seen from above), axes named as on the figures; contours
    span exactly the grid (no equal-aspect padding)."""
    from landscape.io.surface_file import read_surface
    from landscape.views.report_data import surface_section

    for name, axes in (("surface.h5", ("α", "β")), ("surface_pca.h5", ("PC1", "PC2"))):
        s = read_surface(demo_out / name)
        three, contours = surface_section(demo_out / name)["figures"][:2]
        scene = three["layout"]["scene"]
        assert scene["aspectmode"] == "manual" and scene["aspectratio"]["x"] > scene["aspectratio"]["z"]
        assert scene["camera"]["eye"]["z"] < scene["camera"]["eye"]["x"]  # lower than 45 degrees
        assert (scene["xaxis"]["title"]["text"], scene["yaxis"]["title"]["text"]) == axes
        plane = contours["layout"]
        assert "scaleanchor" not in plane["yaxis"]
        assert plane["xaxis"]["range"] == [float(s.alpha[0]), float(s.alpha[-1])]
        assert plane["yaxis"]["range"] == [float(s.beta[0]), float(s.beta[-1])]


def test_provenance_names_only_what_was_set(demo_out):
    """No "None" for settings not given (an embedded data set has no root); a PCA surface draws no seed."""
    text = (demo_out / REPORT_NAME).read_text()
    prov = text[text.index('<section id="provenance">'):]
    prov = prov[:prov.index("</section>")]
    assert "None" not in prov, re.findall(r".{60}None.{20}", prov)
    assert "digits (all samples)" in prov
    surfaces = prov[prov.index("<h3>Surfaces and samples</h3>"):prov.index("<h3>Run history</h3>")]
    rows = {m[0]: m for m in re.findall(r"<tr><td>([^<]+)</td>((?:<td>[^<]*</td>)+)</tr>", surfaces)}
    assert "not drawn" in rows["surface_pca.h5"][1] and "not drawn" not in rows["surface.h5"][1]


def test_training_chart_keeps_its_legend_off_the_accuracy_axis_and_labels_log_axes(demo_out):
    from landscape.views.report_data import trajectory_section

    sec = trajectory_section(demo_out / "trajectory.h5")
    metrics = sec["figures"][0]["layout"]
    assert metrics["legend"]["orientation"] == "h" and metrics["legend"]["y"] < 0  # below, not over the y2 axis
    assert metrics["margin"]["r"] >= 60 and metrics["yaxis2"]["side"] == "right"
    for fig in sec["figures"]:  # every log axis labelled with plain numbers, no bare mantissa digits
        axis = fig["layout"].get("yaxis", {})
        if axis.get("type") == "log":
            assert len(axis["ticktext"]) >= 2 and all(re.fullmatch(r"[0-9.]+", t) for t in axis["ticktext"])
            assert len(set(axis["ticktext"])) == len(axis["ticktext"])


def test_a_scattered_samples_section_draws_its_points_and_names_the_lowest(tmp_path):
    from landscape.core.design import Design
    from landscape.io.sample_file import open_sample
    from landscape.views.report_samples import sample_section

    d = Design.low_discrepancy("sobol", 4, 64)
    c = d.coefficients()
    st = open_sample(tmp_path / "s.h5", d, c, {"model": "mlp", "directions": "random"})
    loss = 1 + (c ** 2).sum(1)
    st.write(np.arange(40), loss[:40], np.full(40, 0.5))  # 40 of 64 done: a partial file
    st.close()
    sec = sample_section(tmp_path / "s.h5")
    assert sec["progress"].startswith("40/64 points (62.5%)")
    assert [f["data"][0]["type"] for f in sec["figures"]] == ["scatter3d", "scatter"]
    three = sec["figures"][0]["data"][0]
    assert len(three["x"]) == 40 and three["customdata"] == pytest.approx(loss[:40].tolist(), rel=1e-6)
    low = int(np.argmin(loss[:40]))
    assert dict(sec["rows"])["lowest loss"].startswith(f"{loss[low]:.6g} at point {low} ")


def test_partial_surface_shows_progress(tmp_path, cli):
    g = Grid(np.linspace(-1, 1, 7), np.linspace(-1, 1, 5))
    st = SurfaceStore.open(tmp_path / "surface.h5", g, {"model": "mlp", "directions": "random"})
    k = np.arange(0, 20)
    a, b = g.coords(k)
    st.write(k, 1 + a ** 2 + b ** 2, 1 / (2 + a ** 2))
    st.flush()
    (tmp_path / "broken.h5").write_bytes(b"\x89HDF\r\n\x1a\n not really")  # being copied, or damaged
    r = cli("report", str(tmp_path))  # another process, while this one still writes the surface
    assert r.returncode == 0, r.stderr
    dom = open_page(Path(r.stdout.strip()), tmp_path)
    st.close()
    assert page_errors(dom) == [] and 'data-rendered="ok"' in dom
    assert "10/35" not in dom and "20/35 points (57.1%)" in dom and "in progress: surface.h5" in dom
    assert "broken.h5: not shown" in dom


def test_report_command(cli, tmp_path, demo_out):
    r = cli("report", str(demo_out), "--out", str(tmp_path / "r.html"))
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()) == (tmp_path / "r.html").resolve() and (tmp_path / "r.html").stat().st_size > 1e6
    r = cli("report", str(tmp_path / "missing"))
    assert r.returncode == 2 and "expected an output folder" in r.stderr
