"""DataFrames as HTML tables, one way for every table of the report."""

from __future__ import annotations

import pandas as pd

__all__ = ["html_table"]


def html_table(frame: pd.DataFrame, *, escape: bool = True) -> str:
    """``frame`` as an HTML table: no index, missing values as —, floats to 4 significant digits.
    ``escape=False`` keeps HTML inside the cells (the caller has escaped their text)."""
    return frame.to_html(index=False, border=0, na_rep="—", float_format=lambda v: f"{v:.4g}", escape=escape)
