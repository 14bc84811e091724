"""Render pages of the built documentation site in headless Chromium and check them.

For each page: Chromium loads it from a local HTTP server (127.0.0.1, the built site
only), runs its scripts (MathJax typesets the math) and

* takes a screenshot (``docs/_screenshots/<page>.png``, out of git) for a person to
  look at;
* dumps the DOM after the scripts ran, with the results of a small probe script that
  the server adds to the page (the screenshot is taken without it). The probe waits
  for MathJax's first typesetting and records every image's ``naturalWidth`` and
  ``complete`` and every math element's MathJax output.

A page passes when its text holds the expected phrases, every math element of the page
was typeset by MathJax with no TeX error (and the page has at least the expected
number of them), and every image loaded with a width above zero (at least the expected
number). Run by ``nox -s docs-browser`` after the site is built::

    python docs/check_pages.py --chromium /usr/bin/chromium

Exit status 0 when every page passes, 1 otherwise (each failure is printed).
"""

from __future__ import annotations

import argparse
import functools
import html.parser
import http.server
import json
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

DOCS = Path(__file__).resolve().parent
SITE = DOCS / "_build" / "html"
SHOTS = DOCS / "_screenshots"
PROBE_QUERY = "xsoftmax-probe"

# Runs after the page's own scripts: waits for MathJax's first typesetting, then writes
# what it found into a <pre id="xsoftmax-probe"> that --dump-dom shows.
PROBE = """
<script>
window.addEventListener("load", async () => {
  let mathjax = "absent";
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    try { await MathJax.startup.promise; mathjax = "typeset"; }
    catch (error) { mathjax = "failed: " + error; }
  }
  const maths = [...document.querySelectorAll(".math")];
  const out = {
    mathjax: mathjax,
    math: maths.length,
    mathTypeset: maths.filter((m) => m.querySelector("mjx-container")).length,
    mathErrors: document.querySelectorAll("mjx-merror").length,
    images: [...document.images].map((img) => ({
      src: img.getAttribute("src"), complete: img.complete, width: img.naturalWidth,
    })),
  };
  const pre = document.createElement("pre");
  pre.id = "xsoftmax-probe";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>
"""


@dataclass(frozen=True)
class Page:
    """A page to check: its path in the site and what it must show."""

    name: str
    path: str
    phrases: tuple[str, ...]
    min_math: int = 0
    min_images: int = 0


PAGES = (
    Page("home", "index.html", ("xsoftmax", "exact", "Tutorial", "API reference"), 1, 1),
    Page(
        "api-cross_entropy",
        "generated/xsoftmax.cross_entropy.html",
        ("cross_entropy", "Parameters", "label_smoothing", "ignore_index", "Examples"),
        1,
    ),
    Page("accuracy", "accuracy.html", ("Accuracy", "ulps", "mpmath", "log_softmax"), 1),
    Page("performance", "performance.html", ("Performance", "scipy"), 0, 1),
)


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the site; adds the probe script to a page requested with ?xsoftmax-probe."""

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        if query != PROBE_QUERY:
            super().do_GET()
            return
        file = Path(self.translate_path(path))
        body = file.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>", 1)
        data = body.encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: no line per request."""


class _Text(html.parser.HTMLParser):
    """The visible text of a DOM dump, and the probe's JSON."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.probe: str | None = None
        self._in_probe = False
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        if tag == "pre" and ("id", "xsoftmax-probe") in attrs:
            self._in_probe = True

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1
        if tag == "pre":
            self._in_probe = False

    def handle_data(self, data: str) -> None:
        if self._in_probe:
            self.probe = (self.probe or "") + data
        elif not self._skip:
            self.parts.append(data)


def _chromium(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        chromium,
        "--headless",
        "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=15000",  # run the scripts (MathJax) before the capture
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def check_page(chromium: str, base: str, page: Page, profile: Path) -> list[str]:
    """Screenshot ``page`` and return what is wrong with it (empty when it passes)."""
    url = f"{base}/{page.path}"
    shot = SHOTS / f"{page.name}.png"
    shot.unlink(missing_ok=True)
    _chromium(chromium, profile, "--window-size=1280,1600", f"--screenshot={shot}", url)
    problems = []
    if not shot.exists() or shot.stat().st_size == 0:
        problems.append("no screenshot was written")
    dump = _chromium(chromium, profile, "--dump-dom", f"{url}?{PROBE_QUERY}")
    parser = _Text()
    parser.feed(dump.stdout)
    if parser.probe is None:
        tail = dump.stderr.strip().splitlines()[-3:]
        return [*problems, f"the probe did not report (chromium: {' | '.join(tail)})"]
    probe = json.loads(parser.probe)
    text = " ".join(" ".join(parser.parts).split())
    problems += [f"text lacks {phrase!r}" for phrase in page.phrases if phrase not in text]
    if probe["math"] < page.min_math:
        problems.append(f"{probe['math']} math elements, expected at least {page.min_math}")
    if probe["math"] and probe["mathjax"] != "typeset":
        problems.append(f"MathJax did not run: {probe['mathjax']}")
    if probe["mathTypeset"] != probe["math"]:
        problems.append(f"MathJax typeset {probe['mathTypeset']} of {probe['math']} math elements")
    if probe["mathErrors"]:
        problems.append(f"{probe['mathErrors']} TeX errors in the math")
    images = probe["images"]
    if len(images) < page.min_images:
        problems.append(f"{len(images)} images, expected at least {page.min_images}")
    problems += [
        f"image {img['src']} did not load (complete={img['complete']}, width={img['width']})"
        for img in images
        if not (img["complete"] and img["width"] > 0)
    ]
    print(
        f"{page.name}: {len(text)} characters of text, {probe['mathTypeset']}/{probe['math']} "
        f"math typeset, {sum(img['width'] > 0 for img in images)}/{len(images)} images "
        f"loaded, screenshot {shot.relative_to(DOCS.parent)}"
    )
    return problems


def main(argv: list[str] | None = None) -> int:
    """Check every page of :data:`PAGES`; print the failures; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    parser.add_argument("--site", type=Path, default=SITE, help="the built HTML site")
    args = parser.parse_args(argv)
    if not (args.site / "index.html").exists():
        print(f"no site at {args.site}: build it first (nox -s docs)", file=sys.stderr)
        return 1
    SHOTS.mkdir(exist_ok=True)
    handler = functools.partial(_Handler, directory=str(args.site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    failed = 0
    try:
        with tempfile.TemporaryDirectory(prefix="xsoftmax-chromium-") as profile:
            for page in PAGES:
                problems = check_page(args.chromium, base, page, Path(profile))
                for problem in problems:
                    print(f"FAIL {page.name}: {problem}")
                failed += bool(problems)
    finally:
        server.shutdown()
        server.server_close()
    print(f"{len(PAGES) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
