"""Griffe extensions for the API page: the package's lazy names, and doctests shown as code.

`LazyExports`: `keras_seresnet/__init__.py` exports its public names through a
module `__getattr__` (PEP 562) over the dict `_EXPORTS` (name -> defining
module), so importing the package imports nothing. Griffe reads source code
without running it and sees no such names; this extension reads `_EXPORTS`
from the source and adds each name to the package as an alias of the object
its module defines, as `from module import name` would have, so that
`::: keras_seresnet.<name>` resolves. Nothing is imported, TensorFlow least.

`DoctestFences`: the docstrings write examples as bare doctest lines
(`>>> model.count_params()` and the output below it), which Markdown reads as
nested block quotes and, for an output such as `['EpochSeed', ...]`, as a
reference link. This wraps each run of doctest lines, with its output up to
the next blank line, in a `pycon` code fence before the docstring is parsed.

mkdocs.yml loads both (`plugins.mkdocstrings.handlers.python.options.extensions`).
"""

import ast

import griffe

PACKAGE = "keras_seresnet"


def read_exports(path):
    """The `_EXPORTS` dict literal of the module at `path`, without running it."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "_EXPORTS" for target in node.targets
        ):
            return ast.literal_eval(node.value)
    raise ValueError(f"{path} assigns no _EXPORTS dict")


class LazyExports(griffe.Extension):
    """Adds `keras_seresnet.<name>` -> `<module>.<name>` for every entry of `_EXPORTS`."""

    def on_package(self, *, pkg, loader, **kwargs):
        if pkg.path != PACKAGE:
            return
        for name, module in read_exports(pkg.filepath).items():
            if name not in pkg.members:
                pkg.set_member(name, griffe.Alias(name, f"{module}.{name}", parent=pkg))


def fence_doctests(text):
    """`text` with every run of doctest lines (and their output) inside a ```pycon fence.

    A run starts at a line whose stripped form starts with `>>>` and ends at
    the next blank line; the fence takes the run's first line's indentation.
    Lines already inside a fence are left as they are.
    """
    lines, out, in_fence, run_indent = text.split("\n"), [], False, None
    for line in lines:
        stripped = line.strip()
        if run_indent is not None and not stripped:
            out.append(run_indent + "```")
            run_indent = None
        if run_indent is None and stripped.startswith("```"):
            in_fence = not in_fence
        elif run_indent is None and not in_fence and stripped.startswith(">>>"):
            run_indent = line[: len(line) - len(line.lstrip())]
            out.append(run_indent + "```pycon")
        out.append(line)
    if run_indent is not None:
        out.append(run_indent + "```")
    return "\n".join(out)


class DoctestFences(griffe.Extension):
    """Fences the doctest examples of every docstring in the package (`fence_doctests`)."""

    def on_instance(self, *, node, obj, agent, **kwargs):
        if obj.docstring is not None and ">>>" in obj.docstring.value:
            obj.docstring.value = fence_doctests(obj.docstring.value)
