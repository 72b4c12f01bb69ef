"""The weekly statistics as a PNG bar chart, for the office and leaders to see at a glance on a phone.

Unit names need a CJK font; servers get one from the distribution (`fonts-noto-cjk`). Where none is
installed the bars are numbered instead, and the message that goes with the chart lists the numbers.
"""

from __future__ import annotations

import io
from functools import lru_cache

import matplotlib

matplotlib.use("Agg")

from matplotlib import font_manager  # noqa: E402
from matplotlib import pyplot as plt  # noqa: E402

from domain.stats import UnitStats  # noqa: E402

CJK_FAMILIES = ("Noto Sans CJK SC", "Noto Sans SC", "WenQuanYi Micro Hei", "WenQuanYi Zen Hei", "Source Han Sans SC",
                "SimHei", "Microsoft YaHei", "PingFang SC")


@lru_cache(maxsize=1)
def cjk_font() -> str | None:
    available = {f.name for f in font_manager.fontManager.ttflist}
    return next((f for f in CJK_FAMILIES if f in available), None)


def stats_chart(rows: list[UnitStats], title: str, limit: int = 15) -> tuple[bytes, bool]:
    """PNG bytes, and whether the unit names are drawn (True) or numbered (False)."""
    rows = rows[:limit]
    font = cjk_font()
    labels = [r.unit for r in rows] if font else [str(i + 1) for i in range(len(rows))]
    series = [
        ("in progress" if not font else "办理中", [r.in_progress for r in rows], "#5B9BD5"),
        ("overdue now" if not font else "当前逾期", [r.overdue_now for r in rows], "#E06666"),
        ("closed on time" if not font else "按期办结", [r.closed_on_time for r in rows], "#93C47D"),
    ]
    with plt.rc_context({"font.family": [font] if font else ["DejaVu Sans"], "axes.unicode_minus": False}):
        fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
        width = 0.27
        xs = range(len(rows))
        for i, (name, values, color) in enumerate(series):
            ax.bar([x + (i - 1) * width for x in xs], values, width, label=name, color=color)
        ax.set_xticks(list(xs))
        ax.set_xticklabels(labels, rotation=30 if font else 0, ha="right" if font else "center", fontsize=9)
        ax.set_title(title if font else "weekly supervision statistics")
        ax.legend(fontsize=8)
        ax.yaxis.get_major_locator().set_params(integer=True)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        plt.close(fig)
    return buf.getvalue(), font is not None
