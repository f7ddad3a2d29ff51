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


@dataclass(frozen=True)
class Edge:
    a: int
    b: int
    #: The identifiers behind the link ("email user1@example.com", ...).
    labels: tuple[str, ...]
    cut: bool = False


@dataclass(frozen=True)
class Graph:
    """A case's reports (nodes) and the identifiers linking them (edges), laid out on a
    circle for SVG: readable for the few dozen reports a case view shows."""

    title: str
    nodes: list[int]
    edges: list[Edge]
    size: int = 420

    def layout(self) -> dict[str, list[dict[str, float | str | bool]]]:
        import math

        n = max(1, len(self.nodes))
        c = self.size / 2
        r = c - 40 if n > 1 else 0.0
        where: dict[int, tuple[float, float]] = {}
        nodes: list[dict[str, float | str | bool]] = []
        for i, node in enumerate(self.nodes):
            angle = 2 * math.pi * i / n - math.pi / 2
            x, y = round(c + r * math.cos(angle), 1), round(c + r * math.sin(angle), 1)
            where[node] = (x, y)
            nodes.append({"id": str(node), "x": x, "y": y})
        edges: list[dict[str, float | str | bool]] = []
        for e in self.edges:
            if e.a not in where or e.b not in where:
                continue
            (x1, y1), (x2, y2) = where[e.a], where[e.b]
            edges.append(
                {
                    "x1": x1,
                    "y1": y1,
                    "x2": x2,
                    "y2": y2,
                    "mx": round((x1 + x2) / 2, 1),
                    "my": round((y1 + y2) / 2 - 4, 1),
                    "label": e.labels[0].split(" ", 1)[0]
                    + (f" +{len(e.labels) - 1}" if len(e.labels) > 1 else ""),
                    "title": f"reports {e.a} and {e.b}: " + "; ".join(e.labels),
                    "cut": e.cut,
                }
            )
        return {"nodes": nodes, "edges": edges}
