"""Every page of the built smoke book in a real browser (headless Chromium).

Fails on a console error, an image that does not load, a glue that did not render, a table
wider than the page at 1280 px, a path of the machine that built the book (one starting
with / or ~) in any page's text, or a Python repr (a list or dict of strings, an object's
address, a numpy scalar, a tensor, a pandas Series footer) on a notebook's page. Takes a
full-page screenshot of every page into `book/_build/screenshots/`. Without the browser, every
figure the smoke book saved is checked for text that overlaps and for a drawn method that no
legend names (`synclib.viz.figure_checks`, recorded in each PNG).
Needs Debian's chromium (`.ci/run` installs it) and the playwright package; without them the
test skips and says why.
"""

import re
import shutil
import subprocess
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("agg")
import matplotlib.pyplot as plt  # noqa: E402

from synclib import viz  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# an absolute path (/home/..., /tmp/x/y) or a home-relative one (~/...): a slash that follows
# no word character, dot or bracket (so "and/or", "∂L/∂a" and "../spec" are not paths)
MACHINE_PATH = re.compile(r"(?<![\w.)\]/])(/[A-Za-z_][\w.+-]*/[\w.+-]+|~/[\w.+-]+)")
OVERFLOW_JS = """() => {
  const box = (document.querySelector('article') || document.querySelector('main') || document.body).getBoundingClientRect();
  return Array.from(document.querySelectorAll('article table, main table'))
    .filter(t => t.getBoundingClientRect().right > box.right + 1 || t.getBoundingClientRect().left < box.left - 1)
    .map(t => (t.innerText || '').slice(0, 60).replace(/\\s+/g, ' ')
              + ` (${Math.round(t.getBoundingClientRect().width)} px of ${Math.round(box.width)})`);
}"""

# what a page shows when a notebook displays a Python object instead of formatting it
PYTHON_REPR = re.compile(
    r"\[(?:'[^'\n]*'|\"[^\"\n]*\")(?:, (?:'[^'\n]*'|\"[^\"\n]*\"))+\]"  # ['a', 'b']
    r"|\{'[^'\n]+': "  # {'key': ...}
    r"|<[\w.]+ object at 0x[0-9a-f]+>"  # <synclib.study.Study object at 0x7f...>
    r"|\bnp\.(?:float|int)(?:16|32|64)\("  # np.float64(0.5)
    r"|\btensor\(\["  # tensor([...])
    r"|\bdtype: (?:float|int|object|bool)"  # a pandas Series' footer
)


def python_reprs(text: str) -> list[str]:
    return PYTHON_REPR.findall(text)


def test_the_repr_rule_tells_reprs_from_prose():
    assert python_reprs("runs: ['partworld/vgg16/ours/s0', 'partworld/vgg16/ours/s1']") != []
    assert python_reprs("{'swap': 0.03}") == ["{'swap': "]
    assert python_reprs("<synclib.study.Study object at 0x7f3a2b>") != []
    assert python_reprs("value np.float64(0.25)") == ["np.float64("]
    assert python_reprs("Name: interp, dtype: float64") == ["dtype: float"]
    assert python_reprs("ours ['Eq. 6 as printed'] and {a, b}; the set [0.01, 0.5]; tensor algebra") == []


def test_figure_checks_find_colliding_text_and_an_unnamed_method(tmp_path):
    fig, ax = plt.subplots(figsize=(1.5, 1.5))
    ax.set_xticks(range(10))
    ax.set_xticklabels([f"label{i}" for i in range(10)])  # ten long labels on 1.5 inches collide
    ax.plot([0, 9], [0, 1], label="Ours")
    ax.plot([0, 9], [1, 0], label="Baseline")
    ax.plot([0, 9], [0.5, 0.5], label="_a seed")  # not meant for a legend
    ax.legend(handles=ax.lines[:1])
    path = viz.save_figure(fig, tmp_path / "f.png")
    checks = viz.read_figure_checks(path)
    assert ["label0", "label1"] in checks["overlaps"]
    assert checks["unlabelled"] == ["Baseline"]
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1], [0, 1], label="Ours")
    ax.set_xlim(0, 1)  # ticks beyond the limits are not drawn, so they cannot collide
    ax.legend()
    assert viz.figure_checks(fig) == {"overlaps": [], "unlabelled": []}
    plt.close(fig)


def machine_paths(text: str) -> list[str]:
    return MACHINE_PATH.findall(text)


def test_the_path_rule_tells_paths_from_prose():
    assert machine_paths("wrote /tmp/build/results/quick/table1.csv") == ["/tmp/build"]
    assert machine_paths("see ~/runs/abc") == ["~/runs"]
    assert machine_paths("wrote results/quick/table1.csv; and/or ∂L/∂a; ../spec/SPEC.md; a / b; 1/2") == []


@pytest.fixture(scope="module")
def smoke_book():
    """The smoke book, built by the same command a user runs: the one the pipeline test built
    (both ways, with the same pages) when it ran in this session, else one built here."""
    from conftest import BUILT

    if BUILT.get("smoke_html") and (BUILT["smoke_html"] / "index.html").is_file():
        return BUILT["smoke_html"]
    html = ROOT / "book/_build/html"
    r = subprocess.run([str(Path(ROOT / ".venv/bin/synclib")) if (ROOT / ".venv/bin/synclib").exists()
                        else "synclib", "reproduce", "--profile", "smoke"],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return html


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
def test_every_page_renders_in_chromium(smoke_book):
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    pages = sorted(p for p in smoke_book.rglob("*.html") if p.name not in ("genindex.html", "search.html", "index.html")
                   and "_static" not in p.parts and "_sources" not in p.parts)
    assert {"intro.html", "summary.html", "table1.html", "fig4.html", "claims.html", "own_network.html",
            "api.html"} <= {p.name for p in pages}
    problems = []
    shots = ROOT / "book/_build/screenshots"  # beside the checkout's own build, whichever book was opened
    shots.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        for path in pages:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors = []
            page.on("console", lambda m, errors=errors: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
            page.goto(path.as_uri(), wait_until="load")
            broken = page.evaluate(
                "Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
            text = page.inner_text("main") if page.query_selector("main") else page.inner_text("body")
            unrendered = [w for w in ("{glue", "glue:text", ".ipynb::") if w in text]
            n_images = page.evaluate("document.images.length")
            if errors or broken or unrendered:
                problems.append(f"{path.name}: console {errors}, broken images {broken}, glue {unrendered}")
            wide = page.evaluate(OVERFLOW_JS)
            if wide:
                problems.append(f"{path.name}: tables wider than the page at 1280 px: {wide}")
            if paths := machine_paths(text):
                problems.append(f"{path.name}: paths of the machine that built it: {paths[:3]}")
            if "executed" in path.parts and (reprs := python_reprs(text)):
                problems.append(f"{path.name}: a Python repr on the page: {reprs[:3]}")
            shots.mkdir(exist_ok=True)
            page.screenshot(path=str(shots / f"{path.stem}.png"), full_page=True)
            if path.stem.startswith("fig") and n_images == 0:
                problems.append(f"{path.name}: a figure page without an image")
            page.close()
        browser.close()
    assert not problems, "\n".join(problems)
    assert {p.stem for p in pages} <= {p.stem for p in shots.glob("*.png")}  # a screenshot of every page
    assert "intro.html" in (smoke_book / "index.html").read_text()  # the front page redirects


def test_every_figure_of_the_book_has_no_colliding_text_and_names_every_method(smoke_book):
    """The figures the smoke book's notebooks saved (their PNGs record `viz.figure_checks`)."""
    results = smoke_book.parents[2] / "results" / "smoke"
    checked = {p.name: viz.read_figure_checks(p) for p in sorted(results.glob("*.png"))}
    checked = {k: v for k, v in checked.items() if v is not None}
    assert {"fig4.png", "fig6.png", "fig7.png", "fig9.png", "fig10.png"} <= set(checked)
    bad = {k: v for k, v in checked.items() if v["overlaps"] or v["unlabelled"]}
    assert not bad, bad
