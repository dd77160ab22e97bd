"""docs/render_check.py: what it finds wrong in a page as the browser rendered it, and the refusals of its command
line, which come before any browser starts. (The browser itself is not on CI; the check is run by hand.)"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from script_module import load_script

SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "render_check.py"


@pytest.fixture(scope="module")
def render_check():
    return load_script(SCRIPT, "docs_render_check")


def _dom(*body: str) -> str:
    return "<html><head></head><body>" + "".join(body) + "</body></html>"


TYPESET = ('<span class="math notranslate nohighlight"><mjx-container class="MathJax" jax="CHTML">'
           '<mjx-math><mjx-mi></mjx-mi></mjx-math></mjx-container></span>')


def test_a_page_whose_formulas_are_typeset_and_whose_images_exist_passes(render_check, tmp_path):
    (tmp_path / "_images").mkdir()
    (tmp_path / "_images" / "figure.png").write_bytes(b"png")
    page = tmp_path / "page.html"
    dom = _dom(TYPESET, TYPESET, '<img alt="" src="_images/figure.png">', '<img src="https://example.org/x.png">')
    assert render_check.page_problems(page, dom) == []


def test_a_formula_left_as_tex_is_reported(render_check, tmp_path):
    untypeset = r'<span class="math notranslate nohighlight">\(x^{2\)</span>'
    problems = render_check.page_problems(tmp_path / "page.html", _dom(TYPESET, untypeset))
    assert problems == ["1 of 2 formulas were not typeset"]


@pytest.mark.parametrize("error", [
    '<mjx-merror data-mjx-error="Double exponent: use braces to clarify"><mjx-mtext></mjx-mtext></mjx-merror>',
    r'<mjx-assistive-mml><math><mtext mathcolor="red">\foo</mtext></math></mjx-assistive-mml>',
], ids=["tex-error", "unknown-command"])
def test_a_mathjax_error_is_reported(render_check, tmp_path, error):
    dom = _dom(TYPESET.replace("<mjx-mi></mjx-mi>", error))
    problems = render_check.page_problems(tmp_path / "page.html", dom)
    assert problems == ["1 formula error(s) (a TeX error or an unknown command, shown in red)"]


def test_a_missing_image_is_reported_relative_to_its_page(render_check, tmp_path):
    (tmp_path / "tutorials").mkdir()
    (tmp_path / "_images").mkdir()
    (tmp_path / "_images" / "here.png").write_bytes(b"png")
    page = tmp_path / "tutorials" / "page.html"
    dom = _dom('<img src="../_images/here.png">', '<img src="../_images/gone%20away.png">')
    assert render_check.page_problems(page, dom) == ["image ../_images/gone%20away.png is missing"]


def test_a_page_that_did_not_load_is_reported(render_check, tmp_path):
    assert render_check.page_problems(tmp_path / "page.html", "") == ["the page did not load"]


def _refusal(render_check, argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        render_check.main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_a_folder_without_a_built_site_is_refused(render_check, tmp_path, capsys):
    err = _refusal(render_check, [str(tmp_path), "--chromium", sys.executable], capsys)
    assert "no built site" in err and "make docs" in err


def test_a_missing_browser_is_refused_with_how_to_install_it(render_check, tmp_path, capsys):
    (tmp_path / "index.html").write_text("<html></html>")
    err = _refusal(render_check, [str(tmp_path), "--chromium", str(tmp_path / "no-such-browser")], capsys)
    assert "not found" in err and "apt-get install chromium" in err
