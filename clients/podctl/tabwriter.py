"""Go's text/tabwriter, the part kubectl uses: cells separated by tabs are
aligned in columns, a column block spans the consecutive lines that have a
cell in that column, the last cell of a line is not part of any column.

`kubectl get` prints through a writer with minwidth 6 and padding 3; `kubectl
describe` through one with minwidth 0 and padding 2. Matching the algorithm,
not only the look, is what makes podctl's output line up as kubectl's does
(describe's nested blocks in particular). Pure.
"""

from __future__ import annotations

GET_MINWIDTH = 6
GET_PADDING = 3
DESCRIBE_MINWIDTH = 0
DESCRIBE_PADDING = 2


def tabwrite(text: str, minwidth: int = GET_MINWIDTH, padding: int = GET_PADDING) -> str:
    """Align `text` (lines of tab-separated cells) as tabwriter.Flush does."""
    trailing_newline = text.endswith("\n")
    raw_lines = text[:-1].split("\n") if trailing_newline else text.split("\n")
    lines = [line.split("\t") for line in raw_lines]
    out: list[str] = []
    widths: list[int] = []

    def write_lines(line0: int, line1: int) -> None:
        for cells in lines[line0:line1]:
            parts = []
            for j, cell in enumerate(cells):
                if j < len(widths):
                    parts.append(cell + " " * max(0, widths[j] - len(cell)))
                else:
                    parts.append(cell)
            out.append("".join(parts))

    def format_block(line0: int, line1: int) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            write_lines(line0, this)
            line0 = this
            width = minwidth
            while this < line1 and column < len(lines[this]) - 1:
                width = max(width, len(lines[this][column]) + padding)
                this += 1
            widths.append(width)
            format_block(line0, this)
            widths.pop()
            line0 = this
        write_lines(line0, line1)

    format_block(0, len(lines))
    result = "\n".join(out)
    return result + "\n" if trailing_newline else result


def table(headers: list[str], rows: list[list[str]], *, with_headers: bool = True) -> str:
    """A `kubectl get` table: upper-case headers, cells aligned, no trailing blanks."""
    all_rows = ([headers] if with_headers else []) + rows
    text = "".join("\t".join(row) + "\n" for row in all_rows)
    return tabwrite(text, GET_MINWIDTH, GET_PADDING)


def column_widths(
    rows: list[list[str]], minwidth: int = GET_MINWIDTH, padding: int = GET_PADDING
) -> list[int]:
    """Widths of every column but the last (tabwriter's cells), over `rows`."""
    widths: list[int] = []
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            width = max(minwidth, len(cell) + padding)
            if i < len(widths):
                widths[i] = max(widths[i], width)
            else:
                widths.append(width)
    return widths


def remembered_row(row: list[str], widths: list[int]) -> tuple[str, list[int]]:
    """One more row printed with the widths used so far, growing them when a
    cell is wider (tabwriter.RememberWidths, what `kubectl get -w` uses)."""
    grown = column_widths([row])
    widths = [max(a, b) for a, b in zip(widths, grown, strict=False)] + grown[len(widths) :]
    parts = [cell.ljust(widths[i]) if i < len(row) - 1 else cell for i, cell in enumerate(row)]
    return "".join(parts) + "\n", widths
