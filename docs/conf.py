"""Sphinx configuration: Markdown pages (MyST), the furo theme, references from the code."""

from __future__ import annotations

import sys
from pathlib import Path

# the extension that renders the reference tables, and the one module that imports the code
sys.path.insert(0, str(Path(__file__).parent / "_ext"))

project = "videosdk-watchdog"
author = "the videosdk-watchdog authors"
copyright = "the videosdk-watchdog authors"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "watchdog_sphinx",
]

source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
myst_heading_anchors = 3  # `page.md#a-heading` links, as a forge renders them
myst_enable_extensions = ["deflist"]

html_theme = "furo"
html_title = "videosdk-watchdog"

# every reference inside the project must resolve; the standard library's and other
# packages' names are left unlinked (no inventories are fetched: the build is offline)
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(?!watchdog\b).*"),
]
# internal types that appear in the public API's signatures (plugins only read their fields)
nitpick_ignore = [
    ("py:class", "watchdog.delivery.host.PluginInfo"),
    # the type parameters of NotifierContext[...] and NotifierType[...]: a config model
    ("py:class", "watchdog.notifiers.ConfigT_co"),
    ("py:class", "watchdog.notifiers.ModelT"),
]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "exclude-members": "model_config"}
