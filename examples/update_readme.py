"""Copies the demo's `results.md` into README.md between the results markers.

The README's results section is generated, never typed by hand:

    python examples/demo_digits.py          # writes out/results.md and out/demo_digits.png
    python examples/update_readme.py        # replaces the text between the markers

or both at once with `python examples/demo_digits.py --update-readme`. README.md must
contain the two marker lines `<!-- results:start -->` and `<!-- results:end -->`.
"""

import argparse
import os
import shutil
import sys

START = "<!-- results:start -->"
END = "<!-- results:end -->"


def replace_section(text, section):
    """Returns `text` with everything between the markers replaced by `section`."""
    start = text.find(START)
    end = text.find(END)
    if start < 0 or end < 0 or end < start:
        raise ValueError(
            f"README has no `{START}` ... `{END}` pair (in that order); add both marker lines "
            "where the results section should go."
        )
    head = text[: start + len(START)]
    tail = text[end:]
    return f"{head}\n{section.strip()}\n{tail}"


def update_readme(readme="README.md", results="out/results.md", figure_dir="docs"):
    """Writes the results section and copies the demo figure next to the README (`out/`
    is git-ignored, so the README links to the committed copy in `figure_dir`)."""
    with open(results) as f:
        section = f.read()
    figure = os.path.join(os.path.dirname(results), "demo_digits.png")
    if os.path.exists(figure):
        target = os.path.join(os.path.dirname(os.path.abspath(readme)), figure_dir)
        os.makedirs(target, exist_ok=True)
        shutil.copyfile(figure, os.path.join(target, "demo_digits.png"))
        section = section.replace(figure, f"{figure_dir}/demo_digits.png")
    with open(readme) as f:
        text = f.read()
    new = replace_section(text, section)
    if new != text:
        with open(readme, "w") as f:
            f.write(new)
    return new != text


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--readme", default="README.md")
    p.add_argument("--results", default="out/results.md")
    args = p.parse_args(argv)
    try:
        changed = update_readme(args.readme, args.results)
    except (OSError, ValueError) as e:
        print(f"update_readme: {e}", file=sys.stderr)
        return 1
    print(f"{args.readme}: {'updated' if changed else 'already up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
