"""Open every page of the built site in headless Chromium and check that it renders its maths and figures.

``make docs`` proves that the site builds: every reference resolves and every image file exists. It cannot see
what a browser shows. MathJax typesets the formulas in the browser, and a formula it cannot read (an unknown
control sequence, an unbalanced brace) shows up as red error text that no Sphinx warning reports. This script
loads each page the way a reader's browser does, lets MathJax run, reads the resulting document back
(``chromium --dump-dom``) and fails when a page has:

* a formula that MathJax did not typeset (a ``math`` element without a rendered ``mjx-container``);
* a MathJax error (an ``mjx-merror`` element), or an unknown command that MathJax shows as red text;
* an image whose file is missing from the built site;
* no content at all (the page did not load).

Usage: ``make docs-render`` (or ``python docs/render_check.py [SITE]``, default ``docs/_build/html``). It needs
Debian's ``chromium`` (``apt-get install chromium``); CI has none, so this check is run by hand, after ``make
docs``. About 4 minutes for the whole site on a 2-core machine.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import unquote, urlsplit

SITE = Path(__file__).resolve().parent / "_build" / "html"
# The flags a sandboxed machine needs: no sandbox (root), no GPU, and none of Chromium's background connections,
# which a closed network refuses one by one.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync")
MATH_ELEMENT = re.compile(r'<(span|div) class="math notranslate nohighlight"')
RENDERED = re.compile(r"<mjx-container\b")
# MathJax's TeX errors, and the red text its noundefined extension puts in place of an unknown command
MATH_ERROR = re.compile(r'<mjx-merror\b|<mtext mathcolor="red">')
IMAGE = re.compile(r'<img\b[^>]*\bsrc="([^"]+)"')


def page_problems(page: Path, dom: str) -> list[str]:
    """What is wrong with ``page`` (a file of the built site) as the browser rendered it into ``dom``."""
    if "</body>" not in dom:
        return ["the page did not load"]
    problems = []
    formulas, rendered = len(MATH_ELEMENT.findall(dom)), len(RENDERED.findall(dom))
    if rendered < formulas:
        problems.append(f"{formulas - rendered} of {formulas} formulas were not typeset")
    errors = len(MATH_ERROR.findall(dom))
    if errors:
        problems.append(f"{errors} formula error(s) (a TeX error or an unknown command, shown in red)")
    for source in IMAGE.findall(dom):
        parts = urlsplit(source)
        if parts.scheme in ("http", "https", "data"):
            continue
        target = Path(unquote(parts.path)) if parts.scheme == "file" else page.parent / unquote(parts.path)
        if not target.is_file():
            problems.append(f"image {source} is missing")
    return problems


def render(page: Path, chromium: str, budget_ms: int) -> str:
    """The document of ``page`` after its scripts ran for ``budget_ms`` of virtual time."""
    with tempfile.TemporaryDirectory(prefix="render-check-") as profile:
        result = subprocess.run(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}",
             "--dump-dom", page.resolve().as_uri()],
            capture_output=True, text=True, timeout=120)
    return result.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("site", nargs="?", default=str(SITE), help=f"the built site (default: {SITE})")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "chromium",
                        help="the browser (default: chromium on the PATH)")
    parser.add_argument("--budget-ms", type=int, default=8000,
                        help="virtual time each page's scripts get to typeset its maths (default: 8000)")
    parser.add_argument("--jobs", type=int, default=2, help="browsers at a time (default: 2)")
    args = parser.parse_args(argv)
    site = Path(args.site)
    if not (site / "index.html").is_file():
        parser.error(f"{site} holds no built site (no index.html); run `make docs` first")
    if shutil.which(args.chromium) is None:
        parser.error(f"{args.chromium!r} not found; install Debian's chromium (apt-get install chromium) or pass "
                     "--chromium PATH")
    if args.jobs < 1 or args.budget_ms < 1:
        parser.error("--jobs and --budget-ms must be at least 1")
    pages = sorted(p for p in site.rglob("*.html") if not {"_static", "_sources"} & set(p.relative_to(site).parts))
    with ThreadPoolExecutor(args.jobs) as pool:
        doms = list(pool.map(lambda page: render(page, args.chromium, args.budget_ms), pages))
    failed = 0
    for page, dom in zip(pages, doms):
        problems = page_problems(page, dom)
        if problems:
            failed += 1
            print(f"{page.relative_to(site)}: {'; '.join(problems)}")
    formulas = sum(len(MATH_ELEMENT.findall(dom)) for dom in doms)
    print(f"{len(pages)} pages, {formulas} formulas: {failed} page(s) with problems")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
