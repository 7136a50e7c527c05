"""One colour and one display name per optimizer, identical in every plot and table of a report."""

from __future__ import annotations

from matplotlib import colormaps

# the textbook order: plain descent, then momentum, then adaptive rates, then the Adam family
CANONICAL_ORDER = (
    "sgd",
    "momentum",
    "nesterov",
    "adagrad",
    "rmsprop",
    "adadelta",
    "adam",
    "nadam",
    "adamw",
    "radam",
    "adamax",
    "lion",
    "normalizedgd",
)


def order_optimizers(names: list[str]) -> list[str]:
    """``names`` in the canonical order, unknown names last in alphabetical order."""
    rank = {name: index for index, name in enumerate(CANONICAL_ORDER)}
    return sorted(set(names), key=lambda name: (rank.get(name, len(rank)), name))


def optimizer_colors(names: list[str]) -> dict[str, str]:
    """A hex colour per optimizer, fixed by its place in the canonical order (tab20 beyond ten)."""
    palette = [colormaps["tab10"](index) for index in range(10)] + [
        colormaps["tab20"](index) for index in range(1, 20, 2)
    ]
    rank = {name: index for index, name in enumerate(CANONICAL_ORDER)}
    colors = {}
    extra = len(CANONICAL_ORDER)
    for name in order_optimizers(names):
        index = rank.get(name)
        if index is None:
            index, extra = extra, extra + 1
        red, green, blue, _ = palette[index % len(palette)]
        colors[name] = f"#{round(red * 255):02x}{round(green * 255):02x}{round(blue * 255):02x}"
    return colors


def configuration_colors(configurations: list[tuple[str, str]]) -> dict[str, str]:
    """A colour per configuration label, given ``(label, optimizer)`` pairs in display order.

    With one configuration per optimizer each keeps its optimizer's colour, the same in every report;
    otherwise configurations take the palette in display order, so none share a colour.
    """
    optimizers = [optimizer for _, optimizer in configurations]
    if len(set(optimizers)) == len(optimizers):
        by_optimizer = optimizer_colors(optimizers)
        return {label: by_optimizer[optimizer] for label, optimizer in configurations}
    palette = [colormaps["tab10"](index) for index in range(10)] + [
        colormaps["tab20"](index) for index in range(1, 20, 2)
    ]
    colors = {}
    for index, (label, _) in enumerate(configurations):
        red, green, blue, _alpha = palette[index % len(palette)]
        colors[label] = f"#{round(red * 255):02x}{round(green * 255):02x}{round(blue * 255):02x}"
    return colors
