"""The README a user opens: short, the two set-up commands that `.ci/run` relies on, and
links that lead somewhere (the docs site's own links are checked by `make docs --strict`)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_readme_is_short():
    assert len(README.splitlines()) <= 250


def test_exactly_two_setup_commands_and_ci_runs_the_test_one():
    section = README.split("## Two commands on a fresh machine", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]
    assert commands == ["make demo", "make test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_relative_links_exist():
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README)
    local = [link for link in links if "://" not in link]
    assert local, "no relative links found"
    missing = [link for link in local if not (ROOT / link).exists()]
    assert not missing, f"README links to missing files: {missing}"


def test_generated_sections_keep_their_markers():
    for name in ("usage", "results", "evidence"):
        start, end = README.find(f"<!-- {name}:start -->"), README.find(f"<!-- {name}:end -->")
        assert 0 <= start < end, name
