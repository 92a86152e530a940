"""The README's subject table is the one in podmodel.subjects."""

from pathlib import Path

from podmodel.subjects import SUBJECTS

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_subject_table_matches_subjects_module() -> None:
    text = README.read_text()
    table = text.split("<!-- subjects:begin -->", 1)[1].split("<!-- subjects:end -->", 1)[0]
    rows = [ln for ln in table.strip().splitlines()[2:] if ln.startswith("|")]
    expected = [f"| `{s}` | {k} | {w} |" for s, k, w in SUBJECTS]
    assert rows == expected
