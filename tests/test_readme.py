"""The README's generated parts must match the code they describe."""

from pathlib import Path

from tools.model_table import model_table

README = Path(__file__).resolve().parent.parent / "README.md"


def test_model_table_matches_the_builders():
    table = model_table()
    assert table in README.read_text(), (
        "README.md's model table is out of date: "
        "replace it with the output of `python tools/model_table.py`"
    )
