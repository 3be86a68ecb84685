"""ALP against vocabulary size as a small standalone SVG (no plotting library needed)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi == lo:
        return [lo]
    return [lo + (hi - lo) * i / (n - 1) for i in range(n)]


def alp_svg(
    sizes: Sequence[int],
    alps: Sequence[float],
    *,
    chosen: int | None = None,
    title: str = "ALP by vocabulary size",
    width: int = 640,
    height: int = 400,
) -> str:
    """SVG text of the curve ALP(size); the chosen size is drawn as a red dot and labelled."""
    if len(sizes) != len(alps) or not sizes:
        raise ValueError("alp_svg needs as many ALP values as sizes, and at least one")
    left, right, top, bottom = 78, 20, 36, 48
    pw, ph = width - left - right, height - top - bottom
    x_lo, x_hi = min(sizes), max(sizes)
    y_lo, y_hi = min(alps), max(alps)
    if x_hi == x_lo:
        x_lo, x_hi = x_lo - 1, x_hi + 1
    if y_hi == y_lo:
        y_lo, y_hi = y_lo - 1, y_hi + 1

    def x(v: float) -> float:
        return left + (v - x_lo) / (x_hi - x_lo) * pw

    def y(v: float) -> float:
        return top + (y_hi - v) / (y_hi - y_lo) * ph

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2:.1f}" y="20" text-anchor="middle" font-size="14">{escape(title)}</text>',
        f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" stroke="black"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}" stroke="black"/>',
    ]
    for t in _ticks(x_lo, x_hi):
        out.append(
            f'<line x1="{x(t):.1f}" y1="{top + ph}" x2="{x(t):.1f}" y2="{top + ph + 4}" stroke="black"/>'
        )
        out.append(f'<text x="{x(t):.1f}" y="{top + ph + 17}" text-anchor="middle">{t:,.0f}</text>')
    for t in _ticks(y_lo, y_hi):
        out.append(f'<line x1="{left - 4}" y1="{y(t):.1f}" x2="{left}" y2="{y(t):.1f}" stroke="black"/>')
        out.append(f'<text x="{left - 7}" y="{y(t) + 4:.1f}" text-anchor="end">{t:.2f}</text>')
    out.append(f'<text x="{left + pw / 2:.1f}" y="{height - 10}" text-anchor="middle">vocabulary size</text>')
    out.append(
        f'<text x="16" y="{top + ph / 2:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 16 {top + ph / 2:.1f})">ALP (mean log-probability per sentence)</text>'
    )
    points = " ".join(f"{x(s):.1f},{y(a):.1f}" for s, a in zip(sizes, alps, strict=True))
    out.append(f'<polyline points="{points}" fill="none" stroke="#1f77b4" stroke-width="2"/>')
    for s, a in zip(sizes, alps, strict=True):
        out.append(f'<circle cx="{x(s):.1f}" cy="{y(a):.1f}" r="3" fill="#1f77b4"/>')
    if chosen is not None and chosen in sizes:
        a = alps[list(sizes).index(chosen)]
        out.append(f'<circle cx="{x(chosen):.1f}" cy="{y(a):.1f}" r="5" fill="#d62728"/>')
        anchor = "end" if x(chosen) > left + pw / 2 else "start"
        dx = -8 if anchor == "end" else 8
        out.append(
            f'<text x="{x(chosen) + dx:.1f}" y="{y(a) + 16:.1f}" text-anchor="{anchor}" fill="#d62728">'
            f"chosen {chosen:,}</text>"
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"
