"""What the benchmark scripts share: where results go and how README tables are replaced.

The scripts run as `python bench/<name>.py`, so this folder is on their path.
"""

from __future__ import annotations

from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def replace_readme_section(marker: str, markdown: str) -> bool:
    """Put `markdown` between `<!-- MARKER:start -->` and `<!-- MARKER:end -->` in the README.

    Returns False, changing nothing, when the README lacks the markers.
    """
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    text = README.read_text()
    if start not in text or end not in text:
        return False
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    README.write_text(f"{head}{start}\n{markdown}\n{end}{tail}")
    return True
