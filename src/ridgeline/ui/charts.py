"""Small server-rendered SVG charts (no script, no inline style: CSP-clean)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Bar:
    label: str
    value: float | None
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class BarChart:
    """A bar chart of shares (0..1) with optional interval whiskers, laid out for SVG."""

    title: str
    bars: list[Bar]
    width: int = 560
    height: int = 220

    def layout(self) -> list[dict[str, float | str | None]]:
        n = max(1, len(self.bars))
        plot_h = self.height - 50
        step = (self.width - 60) / n
        out: list[dict[str, float | str | None]] = []
        for i, bar in enumerate(self.bars):
            value = bar.value or 0.0
            x = 50 + i * step + step * 0.15
            h = plot_h * max(0.0, min(1.0, value))
            out.append(
                {
                    "label": bar.label,
                    "text": "n/a" if bar.value is None else f"{bar.value:.0%}",
                    "x": round(x, 1),
                    "w": round(step * 0.7, 1),
                    "y": round(20 + plot_h - h, 1),
                    "h": round(h, 1),
                    "cx": round(x + step * 0.35, 1),
                    "ylow": None if bar.low is None else round(20 + plot_h * (1 - bar.low), 1),
                    "yhigh": None if bar.high is None else round(20 + plot_h * (1 - bar.high), 1),
                    "base": 20 + plot_h,
                }
            )
        return out
