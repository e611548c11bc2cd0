"""The stack status widget at the top of every lab."""

from __future__ import annotations

import html


def _rows() -> list[tuple[str, bool, str]]:
    from lab_env.core.profile import current
    from lab_env.stack import status

    rows = []
    for st in status():
        fix = (
            ""
            if st.ready
            else ("run `lab-env up` in a terminal" if st.pid is None else f"see `lab-env logs {st.name}`")
        )
        rows.append((st.name, st.ready, fix))
    rows.append(("profile", True, current().name))
    return rows


def stack_status(refresh: bool = True):  # -> ipywidgets.VBox
    """Green/red per service, with the fix when red, and a refresh button."""
    import ipywidgets as w

    table = w.HTML()
    button = w.Button(description="refresh", icon="refresh", layout=w.Layout(width="110px"))

    def render(_=None) -> None:
        cells = []
        for name, ok, note in _rows():
            color = "#1a7f37" if ok else "#cf222e"
            mark = "\u25cf"
            cells.append(
                f"<tr><td style='color:{color}'>{mark}</td><td><b>{html.escape(name)}</b></td>"
                f"<td>{'ready' if ok and name != 'profile' else ''}{html.escape(note)}</td></tr>"
            )
        table.value = "<table>" + "".join(cells) + "</table>"

    button.on_click(render)
    render()
    return w.VBox([w.HTML("<b>Lab stack</b>"), table, button] if refresh else [table])


def require_stack() -> None:
    """Raise a one-line error naming what is down (for the first cell of a lab)."""
    from lab_env.errors import LabEnvError

    down = [name for name, ok, _ in _rows() if not ok]
    if down:
        raise LabEnvError(f"not running: {', '.join(down)}", "run `lab-env up` in a terminal, then re-run this cell")
