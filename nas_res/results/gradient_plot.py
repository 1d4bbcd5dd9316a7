"""The picture of `resnas gradients`: gradient norms against depth, one line per network.

Two panels share the depth axis (0 is the stem, then the units in network order): the norm of the
loss gradient reaching each unit's input, and that of its weights' gradient, both on a log scale, so
a constant factor per unit (λ^L) is a straight line and a flat line is a gradient that arrives whole.
"""

from __future__ import annotations

from pathlib import Path

from ..inspect.gradients import GradientFlow
from .page import html_table, save


def gradient_figure(flows: list[GradientFlow]):
    """Input- and weight-gradient norms per unit, one line per flow, stage boundaries of the first marked."""
    import matplotlib

    matplotlib.use("Agg")  # files only; no display needed
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5.2), sharex=True)
    for i, flow in enumerate(flows):
        depth = range(len(flow.layers))
        style = {"color": f"C{i}", "linewidth": 1.6, "marker": "o", "markersize": 2.5}
        label = f"{flow.label} (first unit / last unit: {times(flow.first_to_last)})"
        left.plot(depth, [g.input_norm for g in flow.layers], label=label, **style)
        right.plot(depth, [g.weight_norm for g in flow.layers], **style)
    if flows:
        layers = flows[0].layers
        starts = [j for j in range(1, len(layers)) if layers[j].stage != layers[j - 1].stage]
        for ax in (left, right):
            for j in starts:
                ax.axvline(j - 0.5, color="0.6", linewidth=0.8, linestyle=":")
    left.set(ylabel="‖∂loss/∂(unit input)‖ (whole batch)", yscale="log")
    left.set_title("gradient reaching each unit's input")
    right.set(ylabel="‖∂loss/∂(unit weights)‖", yscale="log")
    right.set_title("gradient of each unit's weights")
    for ax in (left, right):
        ax.set_xlabel("depth: 0 = stem, then units in network order (dotted: new stage)")
        ax.grid(alpha=0.3, which="both")
    batch = ", ".join(sorted({f"{f.dataset}, batch {f.batch}, seed {f.seed}" for f in flows}))
    fig.suptitle(f"Gradient flow of one backward pass, BN in train mode ({batch})", fontsize=11)
    fig.legend(loc="lower center", ncol=min(len(flows), 2), fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0.02 + 0.045 * ((len(flows) + 1) // 2), 1, 1))
    return fig


def times(ratio: float) -> str:
    """A ratio of norms as people read it: x35.4, x0.512, x13,400 (three significant digits)."""
    rounded = float(f"{ratio:.3g}")
    return f"x{rounded:,.0f}" if rounded >= 1000 else f"x{rounded:.3g}"


def save_gradients(flows: list[GradientFlow], path: str | Path, field: str = "--plot") -> Path:
    """The figure as an image, or as an HTML page with the norms in a sortable table under it."""
    rows = []
    for flow in flows:
        for i, g in enumerate(flow.layers):
            rows.append(
                {
                    "net": flow.label,
                    "index": i,
                    "part": g.name,
                    "stage": g.stage,
                    "input": f"{g.input_norm:.4g}",
                    "weights": f"{g.weight_norm:.4g}",
                }
            )
    columns = [("net", "net"), ("depth", "index"), ("part", "part"), ("stage", "stage")]
    columns += [("‖∂loss/∂input‖", "input"), ("‖∂loss/∂weights‖", "weights")]
    table = html_table(rows, columns)
    return save(gradient_figure(flows), path, "Gradient flow at initialisation", table, field=field)
