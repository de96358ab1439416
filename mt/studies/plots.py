"""A study's figures as PNG files: scores by source length, long inputs, word F-measure by
training frequency, one line per row with its seeds' standard deviation as error bars.
matplotlib is an optional extra (`pip install "mt-toolkit[plots]"`), imported only here."""

from __future__ import annotations

import statistics
from pathlib import Path

from mt.common.errors import missing_extra
from mt.common.files import replaced_on_success


def pyplot():
    """matplotlib's pyplot on the file-only backend, or one line naming the extra."""
    try:
        import matplotlib
    except ImportError:
        raise missing_extra("a study's figures", "plots", "matplotlib") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def spread(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def draw(path: Path, x_labels: list[str], panels: dict[str, dict[str, list[list]]], x_name: str):
    """One panel per score (title -> row label -> per x, the seeds' values; None: no value),
    one line per row; written to path (a temporary name, renamed)."""
    plt = pyplot()
    figure, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for axis, (title, lines) in zip(axes[0], panels.items(), strict=True):
        for row_label, per_x in lines.items():
            points = [(x, *spread(v)) for x, v in enumerate(per_x) if v and None not in v]
            xs, means, sds = zip(*points, strict=True) if points else ((), (), ())
            axis.errorbar(xs, means, yerr=sds, marker="o", capsize=3, label=row_label)
        axis.set_xticks(range(len(x_labels)), x_labels)
        named(axis, title, x_name)
    save(figure, axes, path, plt)


def named(axis, title: str, x_name: str, y_name: str | None = None) -> None:
    """A panel's title, axis names and grid."""
    axis.set_xlabel(x_name)
    if y_name:
        axis.set_ylabel(y_name)
    axis.set_title(title)
    axis.grid(alpha=0.3)


def save(figure, axes, path: Path, plt) -> None:
    """figure, its first panel's legend shown, as a PNG at path (a temporary name, renamed),
    then closed."""
    axes[0][0].legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with replaced_on_success(path) as temporary:
        figure.savefig(temporary, format="png", dpi=100)
    plt.close(figure)


def scatter(path: Path, panels: dict[str, dict[str, list[tuple]]], x_name: str, y_name: str):
    """One panel per title (kind -> its (x, y) points, a colour each), the diagonal x = y;
    written to path (a temporary name, renamed)."""
    plt = pyplot()
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.5), squeeze=False)
    for axis, (title, kinds) in zip(axes[0], panels.items(), strict=True):
        every = [value for points in kinds.values() for point in points for value in point]
        for kind, points in kinds.items():
            axis.scatter([x for x, _ in points], [y for _, y in points], s=8, label=kind)
        if every:
            low, high = min(every), max(every)
            axis.plot([low, high], [low, high], color="grey", linewidth=0.8)
        named(axis, title, x_name, y_name)
    save(figure, axes, path, plt)
