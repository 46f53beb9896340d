"""The figures' shared parts (matplotlib, imported only when a figure is drawn)."""


def figure(ncols: int, width: float, height: float):
    """A row of ``ncols`` axes, ``width`` x ``height`` inches each: (figure, [axes])."""
    import logging

    import matplotlib

    logging.getLogger("matplotlib").setLevel(logging.WARNING)  # not its font search, when a caller logs DEBUG
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return fig, list(axes[0])


def bars(ax, labels, series, errors: bool = False, log: bool = False, rotation: float = 20, ticklabels=None,
         legend_size: int = 8) -> None:
    """Grouped bars: one group per label, one bar per series (``{name: [value or summary]}``; a
    summary's median, with its min-max as error bars when ``errors``)."""
    width = 0.8 / len(series)
    for k, (name, values) in enumerate(series.items()):
        med = [v["median"] if isinstance(v, dict) else v for v in values]
        err = [[m - v["min"] for m, v in zip(med, values)], [v["max"] - m for m, v in zip(med, values)]] \
            if errors else None
        ax.bar([i + (k - (len(series) - 1) / 2) * width for i in range(len(labels))], med, width, yerr=err,
               capsize=4 if errors else 0, label=name)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(ticklabels or labels, rotation=rotation)
    if log:
        ax.set_yscale("log")
        bottom, top = ax.get_ylim()
        ax.set_ylim(bottom, top * 6)  # room for the legend above the bars
    if len(series) > 1:
        ax.legend(fontsize=legend_size, ncol=2, loc="upper center")


def save(fig, path: str) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
