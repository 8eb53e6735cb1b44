"""A griffe extension for the API reference: the package's docstrings title their doctest sections "Example:"
(singular), which griffe's Google-style parser takes as an admonition and renders the ``>>>`` lines as nested
quotes; this makes "Example:" an examples section, shown as code (tools/mkdocs.yml loads it)."""
import griffe

try:  # where griffe >= 1.8 keeps its Google-style parser
    from griffe._internal.docstrings import google
except ImportError:  # older griffe
    from griffe.docstrings import google  # type: ignore[no-redef]

google._section_kind.setdefault("example", griffe.DocstringSectionKind.examples)


class SingularExamples(griffe.Extension):
    """Nothing to do per object: importing this module registered the section title."""
