"""Every "§N" or "§N.M" that code, messages, figures, simulation files and the README cite
resolves to a heading of the project's own docs/theory.md."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADING = re.compile(r"^#{2,3} (\d+(?:\.\d+)?)[. ]", re.M)
REFERENCE = re.compile(r"§\s?(\d+(?:\.\d+)?)")


def _sections() -> set[str]:
    return set(HEADING.findall((ROOT / "docs" / "theory.md").read_text(encoding="utf-8")))


def _sources():
    for folder in ("lpm", "full_model", "sims", "benchmarks", "scripts", "examples"):
        yield from (p for p in (ROOT / folder).rglob("*") if p.suffix in (".py", ".toml", ".sh", ".md"))
    yield ROOT / "README.md"
    yield from (p for p in (ROOT / "docs").glob("*.md") if p.name != "theory.md")


def test_theory_document_has_the_cited_sections():
    sections = _sections()
    assert {"4.1", "4.2", "4.3", "4.4", "6.1", "6.2", "6.3", "9.1", "10.8"} <= sections
    missing = []
    for path in _sources():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            for ref in REFERENCE.findall(line):
                if ref.rstrip(".") not in sections:
                    missing.append(f"{path.relative_to(ROOT)}:{number}: §{ref}")
    assert not missing, "references to sections docs/theory.md does not have:\n" + "\n".join(missing)


def test_readme_links_the_theory_document():
    assert "(docs/theory.md)" in (ROOT / "README.md").read_text(encoding="utf-8")


LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_readme_is_the_front_door_linking_every_docs_page():
    """The README stays short and links every page of docs/; the findings, benchmarks and
    reference live there."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) < 250
    for page in sorted((ROOT / "docs").glob("*.md")):
        assert f"(docs/{page.name})" in readme, f"README does not link docs/{page.name}"


def test_relative_links_of_the_readme_and_docs_resolve():
    broken = []
    for page in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, "links to files that do not exist:\n" + "\n".join(broken)

