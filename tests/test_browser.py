"""Every page of the built smoke book in a real browser (headless Chromium).

Fails on a console error, an image that does not load, a glue that did not render, a table
wider than the page at 1280 px, or a path of the machine that built the book (one starting
with / or ~) in any page's text. Takes a full-page screenshot of every page into
`book/_build/screenshots/`.
Needs Debian's chromium (`.ci/run` installs it) and the playwright package; without them the
test skips and says why.
"""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

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
            shots.mkdir(exist_ok=True)
            page.screenshot(path=str(shots / f"{path.stem}.png"), full_page=True)
            if path.stem.startswith("fig") and n_images == 0:
                problems.append(f"{path.name}: a figure page without an image")
            page.close()
        browser.close()
    assert not problems, "\n".join(problems)
    assert {p.stem for p in pages} <= {p.stem for p in shots.glob("*.png")}  # a screenshot of every page
    assert "intro.html" in (smoke_book / "index.html").read_text()  # the front page redirects
