"""Time axes for plots of logs: an interval that suits the span, dates in French order, PNG for HTML.

Plumbing shared by the reports of stages 3 and 4: the report itself says what it plots.
"""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

# Time steps of the plots, smallest first, with their French names. The first one that cuts the
# log's span into at most MAX_BUCKETS intervals is used: a minute of logs is read per second, a
# day per hour, a month per day, so that a curve has enough points and never too many.
STEPS = {
    "1s": "1 s",
    "10s": "10 s",
    "1min": "1 min",
    "10min": "10 min",
    "1h": "1 h",
    "6h": "6 h",
    "1D": "1 jour",
    "7D": "7 jours",
}
MAX_BUCKETS = 100

# Date labels in French order, never below the second: ticks of 6 levels (years, months, days,
# hours, minutes, seconds), the label of a tick that opens the level above, and the offset that
# matplotlib writes once at the end of the axis (the date of a day of hours, say).
DATE_FORMATS = ["%Y", "%m/%Y", "%d/%m", "%H:%M", "%H:%M", "%H:%M:%S"]
DATE_ZERO_FORMATS = ["", "%Y", "%d/%m", "%d/%m", "%H:%M", "%H:%M:%S"]
DATE_OFFSET_FORMATS = ["", "%Y", "%m/%Y", "%d/%m/%Y", "%d/%m/%Y", "%d/%m/%Y"]


def bucket(times: pd.Series) -> str:
    """The time step (a key of STEPS) that cuts the span of ``times`` into at most MAX_BUCKETS intervals."""
    span = times.max() - times.min()
    for step in STEPS:
        if span < MAX_BUCKETS * pd.Timedelta(step):
            return step
    return list(STEPS)[-1]


def one_interval(times: pd.Series, step: str) -> bool:
    """True if every time falls in the same interval of ``step`` (a batch scored in under a second)."""
    return times.dt.floor(step).nunique() == 1


def time_axis(ax: plt.Axes, times: pd.Series, step: str) -> None:
    """Fit the x axis to the span of ``times`` with a small margin, and label it with readable dates.

    Without limits, matplotlib widens an axis of a single date to years; without a formatter fitted
    to the span, a minute of logs is labelled in microseconds. When every time falls in one
    interval, the interval is shaded and named: a single point says nothing of a trend.
    """
    start, end = times.min(), times.max()
    # At least 2 s on each side: an axis shorter than 3 whole seconds is ticked in fractions of one.
    margin = max((end - start) * 0.03, pd.Timedelta(step), pd.Timedelta(seconds=2))
    ax.set_xlim(start - margin, end + margin)
    locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(
        mdates.ConciseDateFormatter(
            locator, formats=DATE_FORMATS, zero_formats=DATE_ZERO_FORMATS, offset_formats=DATE_OFFSET_FORMATS
        )
    )
    if one_interval(times, step):
        first = start.floor(step)
        ax.axvspan(first, first + pd.Timedelta(step), color="#e4e9ef", zorder=0)
        ax.set_xlabel(f"temps (UTC) ; un seul intervalle : {first:%Y-%m-%d %H:%M:%S} (pas : {STEPS[step]})")
    else:
        ax.set_xlabel("temps (UTC)")


def centres(series: pd.Series, step: str) -> pd.DatetimeIndex:
    """The middle of each interval of a resampled series: a value holds for its whole interval,
    and its point stays inside the span of the data."""
    return series.index + pd.Timedelta(step) / 2


def png(figure: plt.Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")
