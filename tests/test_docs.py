"""README and docs site: API page complete, nav pages present, relative links alive, README short.

Reads files only: no TensorFlow (`keras_seresnet` imports nothing until a name
is used) and no mkdocs (`mkdocs build --strict` in .ci/run checks the rest:
anchors, the API entries' docstrings).
"""

import os
import re

import pytest
import yaml

import keras_seresnet

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")
README = os.path.join(ROOT, "README.md")
API_PAGE = os.path.join(DOCS, "api.md")
README_MAX_LINES = 150
TEST_MARKER = "<!-- test-command: .ci/run runs the next line verbatim -->"

# [text](target) and ![alt](target); the target ends at whitespace or ")".
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_INLINE_CODE = re.compile(r"`+[^`]*`+")
_EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # http:, https:, mailto:, ...


def _read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def _nav_pages(nav):
    """Every page file that the nav (a list of str or {title: page or list}) names."""
    for entry in nav:
        values = entry.values() if isinstance(entry, dict) else [entry]
        for value in values:
            if isinstance(value, list):
                yield from _nav_pages(value)
            elif not _EXTERNAL.match(value):
                yield value


def _mkdocs_nav():
    with open(os.path.join(ROOT, "mkdocs.yml"), encoding="utf-8") as f:
        config = yaml.safe_load(f)
    assert config.get("docs_dir", "docs") == "docs"
    return list(_nav_pages(config["nav"]))


def _markdown_files():
    """README.md, CONTRIBUTING.md, CHANGELOG.md and every .md file under docs/."""
    files = [os.path.join(ROOT, name) for name in ("README.md", "CONTRIBUTING.md", "CHANGELOG.md")]
    for folder, _, names in os.walk(DOCS):
        files += [os.path.join(folder, name) for name in sorted(names) if name.endswith(".md")]
    return files


def relative_links(text):
    """The relative link targets of Markdown `text`, outside code blocks and code spans."""
    targets, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            continue
        if fenced:
            continue
        for target in _LINK.findall(_INLINE_CODE.sub("", line)):
            if not _EXTERNAL.match(target) and not target.startswith("#"):
                targets.append(target)
    return targets


def test_relative_links_finds_links_and_images_but_not_code_or_urls():
    text = (
        "See [the recipe](recipe.md#model) and ![plot](runs/a/loss.png).\n"
        "`[not](a-link.md)` [web](https://example.com) [here](#anchor)\n"
        "```\n[in](a-fence.md)\n```\n"
    )
    assert relative_links(text) == ["recipe.md#model", "runs/a/loss.png"]


def test_the_api_page_documents_every_public_name():
    lines = {line.strip() for line in _read(API_PAGE).splitlines()}
    missing = [name for name in keras_seresnet.__all__ if f"::: keras_seresnet.{name}" not in lines]
    assert not missing, (
        f"docs/api.md has no '::: keras_seresnet.<name>' line for {missing}; "
        "add one per public name (keras_seresnet.__all__)"
    )


def test_every_nav_page_exists():
    pages = _mkdocs_nav()
    assert "index.md" in pages and "api.md" in pages
    missing = [page for page in pages if not os.path.isfile(os.path.join(DOCS, page))]
    assert not missing, f"mkdocs.yml's nav names pages that docs/ does not hold: {missing}"


def test_every_top_level_docs_page_is_in_the_nav():
    pages = set(_mkdocs_nav())
    orphans = sorted(
        name for name in os.listdir(DOCS) if name.endswith(".md") and name not in pages
    )
    assert not orphans, (
        f"docs/ pages missing from mkdocs.yml's nav: {orphans} "
        "(the comments in the nav say where weights.md and fast-schedule.md go)"
    )


@pytest.mark.parametrize("path", _markdown_files(), ids=lambda p: os.path.relpath(p, ROOT))
def test_relative_links_point_at_existing_files(path):
    folder = os.path.dirname(path)
    broken = [
        target
        for target in relative_links(_read(path))
        if not os.path.exists(os.path.join(folder, target.split("#")[0]))
    ]
    assert not broken, f"{os.path.relpath(path, ROOT)} links to missing files: {broken}"


def test_readme_is_a_short_front_page():
    count = len(_read(README).splitlines())
    assert count <= README_MAX_LINES, (
        f"README.md has {count} lines, more than {README_MAX_LINES}: move details into docs/"
    )


def test_readme_keeps_the_test_command_that_ci_runs():
    # .ci/run takes the lines after the marker from the first fence to the
    # next; it must find exactly the one test command there.
    lines = _read(README).splitlines()
    assert TEST_MARKER in lines, "README.md lost the test-command marker that .ci/run looks for"
    after = lines[lines.index(TEST_MARKER) + 1 :]
    assert after[0] == "```bash", "the test command's fence must follow the marker directly"
    command = after[1 : after.index("```", 1)]
    assert len(command) == 1, f"the fence after the marker must hold one line: {command}"
    assert command[0].startswith("python3 -m venv .venv && ") and "python -m pytest" in command[0]
