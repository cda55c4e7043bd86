"""Every page of the built smoke book in a real browser (headless Chromium).

Fails on a console error, an image that does not load, or a glue that did not render.
Needs Debian's chromium (`.ci/run` installs it) and the playwright package; without them the
test skips and says why.
"""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def smoke_book():
    """The smoke book, built by the same command a user runs."""
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
    assert {"intro.html", "summary.html", "table1.html", "fig4.html", "claims.html"} <= {p.name for p in pages}
    problems = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        for path in pages:
            page = browser.new_page()
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
            if path.stem.startswith("fig") and n_images == 0:
                problems.append(f"{path.name}: a figure page without an image")
            page.close()
        browser.close()
    assert not problems, "\n".join(problems)
    assert "intro.html" in (smoke_book / "index.html").read_text()  # the front page redirects
