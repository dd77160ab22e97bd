"""Sphinx configuration of the continuous_gnn documentation (``make docs``; see docs/about-these-docs.md)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import continuous_gnn

project = "continuous_gnn"
author = "the continuous_gnn authors"
copyright = "the continuous_gnn authors"
release = version = continuous_gnn.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build"]

# -- Markdown (MyST) -------------------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "attrs_block"]
myst_heading_anchors = 3

# -- API reference ---------------------------------------------------------------------------------
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # the docstrings' Args sections give the types, in words a reader can follow
# extra_repr is torch.nn.Module printing; its inherited docstring would say nothing about the class.
autodoc_default_options = {"members": True, "show-inheritance": True, "exclude-members": "extra_repr"}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_use_ivar = True  # Attributes sections as fields: a NamedTuple's fields are not described twice
napoleon_custom_sections = [("Shapes", "notes_style")]

# Strict about our own names only: every reference into continuous_gnn must resolve; torch, PyG and the
# standard library have no inventory offline (the build never touches the network).
nitpicky = True
nitpick_ignore_regex = [(r"py:.*", r"^(?!continuous_gnn\b).*")]

# -- Maths: MathJax from the sphinx-mathjax-offline package, copied into the site (no CDN at view time) --
mathjax_path = "mathjax/tex-chtml.js"

# -- HTML ------------------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"continuous_gnn {release}"
html_static_path = ["_static"]
html_css_files = ["wide-code.css"]
html_show_sourcelink = False


def _canonical(name: str) -> str | None:
    """``continuous_gnn.Graph`` -> ``continuous_gnn.graph.Graph``: where a re-exported object is documented."""
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attribute in parts[cut:]:
                obj = getattr(obj, attribute)
        except AttributeError:
            return None
        module = getattr(obj, "__module__", None)
        qualname = getattr(obj, "__qualname__", None)
        if inspect.ismodule(obj) or module is None or qualname is None:
            return None
        owner = module + "." + qualname
        return owner if owner != name else None
    return None


def _resolve_reexport(app, env, node, contnode):
    """Resolve a reference to a re-exported name (``continuous_gnn.Graph``) to its documented definition."""
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    if not re.match(r"^~?continuous_gnn\b", target):
        return None
    canonical = _canonical(target.lstrip("~"))
    if canonical is None:
        return None
    domain = env.get_domain("py")
    node["reftarget"] = canonical
    return domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"], canonical, node, contnode)


API_DIR = Path(__file__).parent / "api" / "generated"


def public_modules(package=continuous_gnn) -> list[str]:
    """Every public module of the package: names without a leading underscore at any level."""
    names = [package.__name__]
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


def _module_page(name: str, modules: list[str]) -> str:
    children = [m for m in modules if m.rpartition(".")[0] == name]
    title = name.replace("_", r"\_")
    lines = [title, "=" * len(title), "", f".. automodule:: {name}", "   :members:", "   :ignore-module-all:",
             "   :show-inheritance:", ""]
    if children:
        lines += [".. rubric:: Modules", "", ".. toctree::", "   :maxdepth: 1", ""]
        lines += [f"   {child}" for child in children]
        lines.append("")
    return "\n".join(lines)


def write_api_pages(app) -> None:
    """One page per public module under api/generated/ (rewritten only when it changes; stale pages removed).

    Written here rather than by autosummary, which takes ``continuous_gnn.ode.integrate`` for the function
    that the package re-exports under the module's name.
    """
    modules = public_modules()
    API_DIR.mkdir(parents=True, exist_ok=True)
    wanted = {f"{name}.rst": _module_page(name, modules) for name in modules}
    for stale in API_DIR.glob("*.rst"):
        if stale.name not in wanted:
            stale.unlink()
    for filename, text in wanted.items():
        path = API_DIR / filename
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")


def setup(app):
    app.connect("builder-inited", write_api_pages)
    app.connect("missing-reference", _resolve_reexport)
