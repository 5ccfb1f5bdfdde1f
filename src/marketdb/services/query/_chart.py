"""Candlestick charts with volume, from a bars DataFrame.

PNG/SVG/PDF go through matplotlib (object API and the Agg canvas: no pyplot
global state, no display needed); HTML through plotly, written as one
self-contained file that works offline. Both are optional dependencies
(``pip install 'marketdb[chart]'``), imported only when a chart is drawn.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from marketdb.errors import ConfigurationError, InvalidInput
from marketdb.lazy import lazy_module

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
else:
    np = lazy_module("numpy")
    pd = lazy_module("pandas")

__all__ = ["CHART_FORMATS", "render_chart", "tick_positions"]

#: File suffixes :func:`render_chart` can write.
CHART_FORMATS: tuple[str, ...] = (".png", ".svg", ".pdf", ".html")

_UP = "#26a69a"
_DOWN = "#ef5350"
_REQUIRED = ("open", "high", "low", "close")


def _check_bars(bars: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in _REQUIRED if c not in bars.columns]
    if missing:
        raise InvalidInput(f"bars lack columns {missing} for a candlestick chart")
    if not isinstance(bars.index, pd.DatetimeIndex):
        raise InvalidInput("bars need a DatetimeIndex for a chart", hint="read them with output='pandas'")
    if bars.empty:
        raise InvalidInput(
            "no bars to chart", hint="check the symbol, interval and --start/--end range"
        )
    return bars.sort_index()


def _is_daily(index: pd.DatetimeIndex) -> bool:
    if len(index) < 2:
        return bool((index == index.normalize()).all())
    step = pd.Series(index).diff().min()
    return bool(step >= pd.Timedelta(days=1) and (index == index.normalize()).all())


def render_chart(
    bars: pd.DataFrame,
    path: str | Path,
    *,
    title: str | None = None,
    width: int = 1200,
    height: int = 700,
) -> Path:
    """Write a candlestick chart with a volume pane to ``path``.

    The format follows the suffix (see :data:`CHART_FORMATS`). ``bars`` needs
    open, high, low and close columns, optionally volume, and a DatetimeIndex.
    Returns the path written.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in CHART_FORMATS:
        raise InvalidInput(
            f"cannot write a chart as {suffix or 'a file without suffix'}",
            hint="name the output FILE.png, .svg, .pdf or .html",
        )
    bars = _check_bars(bars)
    if suffix == ".html":
        _render_plotly(bars, path, title=title, width=width, height=height)
    else:
        _render_matplotlib(bars, path, title=title, width=width, height=height)
    return path


def tick_positions(index: pd.DatetimeIndex, max_ticks: int = 10) -> list[int]:
    """Bar positions to label on the x axis.

    Daily and coarser bars: evenly spaced bars. Intraday bars: the first bar of a day,
    every k-th day (k so that at most ``max_ticks`` labels show), so labels stay at the same
    time of day; spacing them a fixed number of bars apart drifted them by an hour a day on
    1h charts, whose days do not hold a whole number of ticks' worth of bars.
    """
    n = len(index)
    if n == 0:
        return []
    if _is_daily(index):
        step = max(1, -(-n // max_ticks))
        return list(range(0, n, step))
    days = np.asarray(index.normalize().asi8)
    starts = [0] + [i for i in range(1, n) if days[i] != days[i - 1]]
    if len(starts) <= 1:
        step = max(1, -(-n // max_ticks))
        return list(range(0, n, step))
    k = max(1, -(-len(starts) // max_ticks))
    return starts[::k]


def _labels(index: pd.DatetimeIndex) -> list[str]:
    fmt = "%Y-%m-%d" if _is_daily(index) else "%Y-%m-%d %H:%M"
    return [ts.strftime(fmt) for ts in index]


def _render_matplotlib(
    bars: pd.DataFrame, path: Path, *, title: str | None, width: int, height: int
) -> None:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import FixedLocator, FuncFormatter
    except ImportError as exc:
        raise ConfigurationError(
            "PNG/SVG/PDF charts need matplotlib, which is not installed",
            hint="pip install 'marketdb[chart]' (or pip install matplotlib), or write .html",
        ) from exc

    o = bars["open"].to_numpy(dtype=float)
    h = bars["high"].to_numpy(dtype=float)
    lo = bars["low"].to_numpy(dtype=float)
    c = bars["close"].to_numpy(dtype=float)
    up = c >= o
    colors = np.where(up, _UP, _DOWN)
    x = np.arange(len(bars))
    labels = _labels(bars.index)
    ticks = tick_positions(pd.DatetimeIndex(bars.index), 8)

    dpi = 100
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    has_volume = "volume" in bars.columns
    grid = fig.add_gridspec(2 if has_volume else 1, 1, height_ratios=[3, 1] if has_volume else [1])
    ax = fig.add_subplot(grid[0])
    ax.vlines(x, lo, h, colors=colors.tolist(), linewidth=0.8)
    body_low = np.minimum(o, c)
    body = np.abs(c - o)
    # A doji still gets a visible body.
    span = np.nanmax(h) - np.nanmin(lo)
    body = np.maximum(body, span * 0.002 if span > 0 else 1e-9)
    width_bar = 0.7 if len(x) < 400 else 0.9
    ax.bar(x, body, bottom=body_low, width=width_bar, color=colors, edgecolor=colors, linewidth=0)
    ax.set_ylabel("price")
    ax.grid(True, alpha=0.25)
    ax.set_xlim(-1, len(x))
    if title:
        ax.set_title(title)

    def _fmt(value: float, _pos: int) -> str:
        i = round(value)
        return labels[i] if 0 <= i < len(labels) else ""

    if has_volume:
        axv = fig.add_subplot(grid[1], sharex=ax)
        vol = bars["volume"].to_numpy(dtype=float)
        axv.bar(x, vol, width=width_bar, color=colors, alpha=0.7, linewidth=0)
        axv.set_ylabel("volume")
        axv.grid(True, alpha=0.25)
        axv.xaxis.set_major_locator(FixedLocator(ticks))
        axv.xaxis.set_major_formatter(FuncFormatter(_fmt))
        for lab in ax.get_xticklabels():
            lab.set_visible(False)
        bottom = axv
    else:
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_major_formatter(FuncFormatter(_fmt))
        bottom = ax
    for lab in bottom.get_xticklabels():
        lab.set_rotation(30)
        lab.set_horizontalalignment("right")
    fig.tight_layout()
    fig.savefig(path)


def _render_plotly(
    bars: pd.DataFrame, path: Path, *, title: str | None, width: int, height: int
) -> None:
    try:
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots
    except ImportError as exc:
        raise ConfigurationError(
            "HTML charts need plotly, which is not installed",
            hint="pip install 'marketdb[chart]' (or pip install plotly), or write .png",
        ) from exc

    has_volume = "volume" in bars.columns
    up = (bars["close"] >= bars["open"]).to_numpy()
    # Category axis: no gaps for nights, weekends and holidays.
    x = _labels(bars.index)
    fig: Any = make_subplots(
        rows=2 if has_volume else 1,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.03,
        row_heights=[0.75, 0.25] if has_volume else [1.0],
    )
    fig.add_trace(
        go.Candlestick(
            x=x,
            open=bars["open"],
            high=bars["high"],
            low=bars["low"],
            close=bars["close"],
            increasing_line_color=_UP,
            decreasing_line_color=_DOWN,
            name="price",
        ),
        row=1,
        col=1,
    )
    if has_volume:
        fig.add_trace(
            go.Bar(
                x=x,
                y=bars["volume"],
                marker_color=np.where(up, _UP, _DOWN).tolist(),
                name="volume",
            ),
            row=2,
            col=1,
        )
    ticks = tick_positions(pd.DatetimeIndex(bars.index), 10)
    fig.update_xaxes(type="category", tickvals=[x[i] for i in ticks], ticktext=[x[i] for i in ticks])
    fig.update_layout(
        title=title,
        width=width,
        height=height,
        showlegend=False,
        xaxis_rangeslider_visible=False,
        template="plotly_white",
    )
    fig.write_html(path, include_plotlyjs=True, full_html=True)
