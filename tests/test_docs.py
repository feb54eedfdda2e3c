"""Docs point where they say: every reference to a section is a link whose anchor exists.

mkdocs --strict checks links between the site's pages, anchors included, but not prose: a page that
says 'README "Notes and limits"' or 'see "Limits"' names a section no build can check, and the README
is outside the site, so nothing checks the README's own links. Three rules, on the README,
results/README.md and every page under docs/ (fenced code and inline code are left out: a file
name in backticks is a path, not a reference):

- a page under docs/ never refers to the README in prose: the site cannot link it, and the README
  only summarises pages of the site, so the reference goes to the page that holds the text;
- a quoted title used as a section's name ('"X" section', 'section "X"', 'see "X"', 'page.md's "X"')
  is a heading of the file it names, or else of some committed Markdown file or of the summary.md
  the report writes (its "## X" lines in bench/report/);
- a relative link's file exists, and its anchor is a heading of that file, slugged the way both
  GitHub and mkdocs slug it (the pages read on both);
- a repository path in inline code (`bench/...`, `results/reference/...`, ...) exists, except on
  the pages that name files the reader is about to write (adding-a-*) or that a move has since
  renamed (the changelog).
"""

from __future__ import annotations

import re
import subprocess
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.M | re.S)
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.S)
LINK = re.compile(r"\[((?:[^\[\]]|\[[^\]]*\])*)\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$", re.M)
QUOTED_SECTION = re.compile(
    r"""(?:(?P<file>[\w./-]+\.md)`?'s\s+|\b[Ss]ection\s+|\b[Ss]ee\s+)"(?P<a>[^"\n]{2,80})"|"(?P<b>[^"\n]{2,80})"\s+section\b"""
)


def markdown_files() -> list[Path]:
    tracked = subprocess.run(["git", "ls-files", "*.md"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    return [REPO / line for line in tracked.splitlines() if (REPO / line).is_file()]


def report_headings() -> list[str]:
    """The section titles bench.report writes into every summary.md."""
    return [
        m.group(1)
        for path in sorted((REPO / "bench" / "report").glob("*.py"))
        for m in re.finditer(r'"## ([^"{}\\]+)"', path.read_text())
    ]


def checked_files() -> list[Path]:
    docs = sorted((REPO / "docs").rglob("*.md"))
    return [REPO / "README.md", REPO / "results" / "README.md", *docs]


def without_fences(text: str) -> str:
    """The text with fenced code blocks blanked, line numbers kept."""
    return FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)


def prose(text: str) -> str:
    """The text a reader takes as prose: no fenced or inline code, links reduced to their text."""
    text = CODE_SPAN.sub(lambda m: " " * len(m.group(0)), without_fences(text))
    return LINK.sub(lambda m: f"[{m.group(1)}]" + " " * (len(m.group(0)) - len(m.group(1)) - 2), text)


def heading_titles(text: str) -> list[str]:
    """Each heading's text as rendered: inline code and link syntax reduced to their words."""
    titles = []
    for match in HEADING.finditer(without_fences(text)):
        title = LINK.sub(lambda m: m.group(1), match.group(2))
        titles.append(title.replace("`", "").strip())
    return titles


def github_slug(title: str) -> str:
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def mkdocs_slug(title: str) -> str:
    """Python-Markdown's toc slugify, which mkdocs uses by default."""
    value = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode("ascii")
    value = re.sub(r"[^\w\s-]", "", value).strip().lower()
    return re.sub(r"[-\s]+", "-", value)


def slugs(titles: list[str], slug) -> set[str]:
    """The anchors one renderer gives these headings (a second heading of one title gets -1, ...)."""
    seen: dict[str, int] = {}
    names = set()
    for title in titles:
        base = slug(title)
        names.add(base if base not in seen else f"{base}-{seen[base]}")
        seen[base] = seen.get(base, 0) + 1
    return names


def anchors(text: str) -> set[str]:
    """The anchors a Markdown text's headings get on both GitHub and the mkdocs site."""
    titles = heading_titles(text)
    return slugs(titles, github_slug) & slugs(titles, mkdocs_slug)


@dataclass(frozen=True)
class Page:
    """A Markdown file to check: its name in messages, its text, the folder its links resolve from."""

    name: str
    text: str
    folder: Path
    in_docs: bool

    @classmethod
    def of(cls, path: Path) -> Page:
        return cls(str(path.relative_to(REPO)), path.read_text(), path.parent, REPO / "docs" in path.parents)


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def readme_mentions(page: Page) -> list[str]:
    """Prose on a docs page that refers to the README."""
    text = prose(page.text)
    return [
        f"{page.name}:{line_of(text, m.start())}: prose refers to the README; link the docs page "
        "that holds the section instead"
        for m in re.finditer(r"\bREADME\b", text)
    ]


def dead_section_names(page: Page, titles: dict[Path, list[str]]) -> list[str]:
    """Quoted titles used as a section's name that no heading has."""
    text = prose(page.text)
    problems = []
    for match in QUOTED_SECTION.finditer(text):
        title = (match.group("a") or match.group("b")).replace("`", "").strip()
        named = match.group("file")
        if named:
            suffix = "/" + named.lstrip("./")
            candidates = [heads for path, heads in titles.items() if ("/" + path.as_posix()).endswith(suffix)]
        else:
            candidates = list(titles.values())
        if not any(title.casefold() == head.casefold() for heads in candidates for head in heads):
            where = f"in {named}" if named else "in any committed Markdown file"
            problems.append(f'{page.name}:{line_of(text, match.start())}: no section "{title}" {where}')
    return problems


def dead_links(page: Page) -> list[str]:
    """Relative links whose file or anchor does not exist."""
    text = CODE_SPAN.sub(lambda m: " " * len(m.group(0)), without_fences(page.text))
    problems = []
    for match in LINK.finditer(text):
        target = match.group(2)
        if re.match(r"[a-z][a-z0-9+.-]*:", target):
            continue  # a URL
        file_part, _, anchor = target.partition("#")
        dest = (page.folder / file_part).resolve() if file_part else None
        where = f"{page.name}:{line_of(text, match.start())}"
        if dest and not dest.exists():
            problems.append(f"{where}: {target} names no file")
        elif anchor and (dest is None or dest.suffix == ".md"):
            heads = anchors(dest.read_text()) if dest else anchors(page.text)
            if anchor not in heads:
                named = dest.relative_to(REPO) if dest else page.name
                problems.append(f"{where}: {target} names no heading of {named}")
    return problems


REPO_FOLDERS = (".ci/", "bench/", "conf/", "docs/", "methods/", "results/reference/", "scripts/", "tests/")
PATHS_MAY_BE_GONE = ("docs/adding-a-method.md", "docs/adding-a-task.md", "docs/changelog.md")


def missing_paths(page: Page) -> list[str]:
    """Repository paths in inline code that name nothing (a pattern or a placeholder is not a path)."""
    if page.name in PATHS_MAY_BE_GONE:
        return []
    text = without_fences(page.text)
    problems = []
    for match in CODE_SPAN.finditer(text):
        span = match.group(0).strip("`").strip()
        path = span.split("::")[0].split(":")[0].rstrip("/.,")
        if span.startswith(REPO_FOLDERS) and " " not in span and not re.search(r"[<>*{}$]", path):
            if not (REPO / path).exists():
                problems.append(f"{page.name}:{line_of(text, match.start())}: {path} does not exist")
    return problems


def problems_in(pages: list[Page]) -> list[str]:
    titles = {path.relative_to(REPO): heading_titles(path.read_text()) for path in markdown_files()}
    titles[Path("bench/report/summary.md")] = report_headings()
    found = []
    for page in pages:
        if page.in_docs:
            found += readme_mentions(page)
        found += dead_section_names(page, titles)
        found += dead_links(page)
        found += missing_paths(page)
    return found


def test_docs_point_where_they_say():
    problems = problems_in([Page.of(path) for path in checked_files()])
    assert not problems, "\n".join(problems)


def planted(line: str) -> Page:
    """A page under docs/ holding one line, kept in memory so a docs build running beside it never sees it."""
    return Page("docs/planted.md", f"# A planted page\n\n{line}\n", REPO / "docs", in_docs=True)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('PPO skips it (README "Notes and limits").', "prose refers to the README"),
        ("README's claims table uses GB.", "prose refers to the README"),
        ('Its "Notes and limits" section says why.', 'no section "Notes and limits"'),
        ('See "Notes and limits".', 'no section "Notes and limits"'),
        ('As estimate.md\'s "Which method for your budget" shows.', 'no section "Which method for your budget"'),
        ("The [budget table](estimate.md#which-method-for-your-budget).", "names no heading of docs/estimate.md"),
        ("The [budget](no-such-page.md).", "names no file"),
        ("As [above](#a-planted-pag).", "names no heading of docs/planted.md"),
        ("Its table is `results/reference/fallbacks.json`.", "results/reference/fallbacks.json does not exist"),
    ],
)
def test_a_planted_dead_reference_fails(line, expected):
    problems = problems_in([planted(line)])
    assert len(problems) == 1 and expected in problems[0] and problems[0].startswith("docs/planted.md:3:"), problems


@pytest.mark.parametrize(
    "line",
    [
        "The [budget table](estimate.md#which-method-for-my-budget) and [Limits](estimate.md#limits).",
        "As [above](#a-planted-page).",
        'estimate.md\'s "Which method for my budget" holds it.',
        "A model card is a `README.md`; the results folder's is `results/README.md`.",
        "Each run writes `results/reference/<sweep>/metrics.json`; `bench/report/` reads `tests/*.py`.",
        "The check is `tests/test_docs.py::test_docs_point_where_they_say`.",
        '"The answer, in short" section of the overview.',
        '```\nREADME "Gone section"\n```',
    ],
)
def test_a_live_reference_passes(line):
    assert problems_in([planted(line)]) == []
