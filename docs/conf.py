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


def _lookup(name: str):
    """The object ``name`` (``continuous_gnn.ode.settings.FixedGrid``) names, or ``None``."""
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            obj = getattr(obj, attribute, None)
            if obj is None:
                return None
        return obj
    return None


def _canonical(name: str) -> str | None:
    """``continuous_gnn.Graph`` -> ``continuous_gnn.graph.Graph``: where a re-exported object is documented."""
    obj = _lookup(name)
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if obj is None or inspect.ismodule(obj) or module is None or qualname is None:
        return None
    owner = module + "." + qualname
    return owner if owner != name else None


def _candidates(target: str, module: str | None, klass: str | None) -> list[str]:
    """Full names a reference may mean: itself when it names the package, else the name looked up in the class
    and the module it is written in, then in their enclosing packages outwards (a docstring may name a sibling
    module's object without importing it)."""
    if re.match(r"^continuous_gnn\b", target):
        return [target]
    scopes = []
    if module:
        parts = module.split(".")
        if klass:
            scopes.append(f"{module}.{klass}")
        scopes += [".".join(parts[:cut]) for cut in range(len(parts), 0, -1)]
    return [f"{scope}.{target}" for scope in scopes if scope.startswith("continuous_gnn")]


def _homes(name: str) -> list[str]:
    """Where a constant that ``name`` re-exports is documented: the modules holding the same object under the same
    name (a value has no ``__module__`` to say where it was defined)."""
    obj, attribute = _lookup(name), name.rpartition(".")[2]
    if obj is None or callable(obj) or inspect.ismodule(obj):
        return []
    return [f"{module}.{attribute}" for module in public_modules()
            if getattr(importlib.import_module(module), attribute, None) is obj]


def _resolve_reexport(app, env, node, contnode):
    """Resolve a reference into the package that Sphinx could not: a re-exported name (``continuous_gnn.Graph``)
    or a short one (``Graph`` in a module that imports it) goes to the documented definition of what it names.

    Short names that name nothing in the package (``Tensor``, ``int``) are torch's, PyG's or Python's, which have
    no inventory offline; a short name that names a package object nobody documented is an error, as a full one
    is (the build is strict)."""
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "").lstrip("~")
    domain = env.get_domain("py")
    for candidate in _candidates(target, node.get("py:module"), node.get("py:class")):
        found_object = _lookup(candidate)
        # A module found for another role (``:func:`train``` in a module beside the module ``train``) is not it.
        if found_object is None or (inspect.ismodule(found_object) and node["reftype"] not in ("mod", "obj")):
            continue
        for name in (candidate, _canonical(candidate), *_homes(candidate)):
            if name is None:
                continue
            found = domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"], name, node, contnode)
            if found is not None:
                return found
        obj = _lookup(candidate)
        # A class or function keeps the module that defined it; a constant or attribute value found in our
        # namespaces has none of its own (or its class's), so it is ours unless it is a class or function from
        # elsewhere that a module imported (torch's Tensor).
        home = getattr(obj, "__module__", None) if callable(obj) or inspect.ismodule(obj) else None
        if home is None or home.startswith("continuous_gnn"):
            from sphinx.util import logging  # here: the tests import this file without Sphinx installed

            logging.getLogger(__name__).warning("reference %r names %s, which the API reference does not document",
                                                target, candidate,
                         location=node)
            return None
    return None


API_DIR = Path(__file__).parent / "api" / "generated"


def public_modules(package=continuous_gnn) -> list[str]:
    """Every public module of the package: names without a leading underscore at any level."""
    names = [package.__name__]
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


def _summary(obj) -> str:
    """The first sentence of an object's docstring, for a list of names (empty for a value without one)."""
    if not (callable(obj) or inspect.ismodule(obj)):
        return ""
    text = " ".join((inspect.getdoc(obj) or "").split("\n\n")[0].split())
    return text.split(". ")[0].rstrip(".") + "." if text else ""


def _defined_elsewhere(obj, export: str, name: str) -> bool:
    """Whether the package ``name`` re-exports ``obj``: a class or function of another module, or a constant that a
    submodule holds under the same name."""
    if inspect.ismodule(obj):
        return False
    if callable(obj):
        return getattr(obj, "__module__", name) != name
    return any(module != name for module in (home.rpartition(".")[0] for home in _homes(f"{name}.{export}")))


def _module_page(name: str, modules: list[str]) -> str:
    children = [m for m in modules if m.rpartition(".")[0] == name]
    title = name.replace("_", r"\_")
    lines = [title, "=" * len(title), "", f".. automodule:: {name}", "   :members:", "   :ignore-module-all:",
             "   :show-inheritance:", ""]
    module = importlib.import_module(name)
    # A package's names are documented where they are defined (:ignore-module-all:), so its page lists them.
    exported = [export for export in getattr(module, "__all__", ()) if hasattr(module, "__path__")
                and not export.startswith("__") and _defined_elsewhere(getattr(module, export), export, name)]
    if exported:
        lines += [".. rubric:: Importable from here", "", f"``from {name} import NAME``, each documented where it is "
                  "defined:", ""]
        lines += [f"* :py:obj:`~{name}.{export}`" + (f" — {summary}" if (summary := _summary(getattr(module, export)))
                                                    else "") for export in exported]
        lines.append("")
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


_ATTRIBUTE_TEXT: dict[str, list[str]] = {}


def _save_attribute_text(app, what, name, obj, options, lines):
    """Before napoleon: keep the text of an attribute or constant whose first line has a colon (see below)."""
    if what in ("attribute", "data", "property") and lines and re.search(r"(?<!:):(?!:)", lines[0]):
        _ATTRIBUTE_TEXT[name] = list(lines)


def _restore_attribute_text(app, what, name, obj, options, lines):
    """After napoleon: it reads the first line of an attribute's docstring as ``type: description``, so "Seconds: the
    median ..." rendered as the type "Seconds". These docstrings never give a type there (the annotation does), and
    hold no sections for napoleon to convert: their own text stands."""
    saved = _ATTRIBUTE_TEXT.pop(name, None)
    if saved is not None and any(line.startswith(":type:") for line in lines):
        lines[:] = saved


def _skip_torch_forward(app, what, name, obj, skip, options):
    """A ``forward`` without a docstring of its own would show ``nn.Module.forward``'s generic text, which says
    nothing of the layer (its class docstring says how it is called)."""
    if name == "forward" and getattr(obj, "__doc__", None) is None:
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_torch_forward)
    app.connect("builder-inited", write_api_pages)
    app.connect("autodoc-process-docstring", _save_attribute_text, priority=400)  # napoleon's runs at 500
    app.connect("autodoc-process-docstring", _restore_attribute_text, priority=600)
    app.connect("missing-reference", _resolve_reexport)
