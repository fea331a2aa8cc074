"""Plots of attention analyses (matplotlib, imported inside each function; no cartopy, no network)."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr


def _axes(ax: Any) -> Any:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.figure(figsize=(6, 4)).add_subplot()


def plot_mean_distance(result: xr.Dataset, *, ax: Any = None, title: str | None = None) -> Any:
    """Mean attention distance per head against layer (the ViT paper's Fig. 7 style).

    Args:
        result: from :func:`gridvit.analysis.mean_attention_distance`.
        ax: matplotlib Axes to draw on (default: a new figure).
        title: the axes title.

    Returns:
        The Axes: one dot per head (filled: learned; open: the distance bias alone), the uniform-attention
        reference as a dashed line.
    """
    if not isinstance(result, xr.Dataset) or "mean_distance" not in result:
        raise TypeError("result must be the Dataset returned by mean_attention_distance")
    ax = _axes(ax)
    md = result["mean_distance"]
    layers = md["layer"].values + 1
    colours = [f"C{h % 10}" for h in range(md.sizes["head"])]
    for h, colour in enumerate(colours):
        ax.scatter(layers, md.isel(head=h).values, color=colour, label=f"head {h}", zorder=3)
        if "prior_distance" in result:
            ax.scatter(layers, result["prior_distance"].isel(head=h).values, facecolors="none", edgecolors=colour)
    ax.axhline(float(result["uniform_distance"]), color="k", ls="--", lw=1, label="uniform attention")
    ax.set_xlabel("layer")
    ax.set_xticks(layers)
    ax.set_ylabel(f"mean attention distance ({md.attrs.get('units', '')})")
    ax.set_title(title or "mean attention distance (open: distance bias alone)")
    ax.legend(fontsize="small", loc="best")
    return ax


def plot_map(da: xr.DataArray, *, ax: Any = None, title: str | None = None, mark: tuple[float, float] | None = None,
             cmap: str = "viridis", **kwargs: Any) -> Any:
    """A map (y, x) with coordinate axes and the query point marked.

    Args:
        da: a 2-D map (an attention map, rollout, correlation or stencil after selecting other dims).
        ax: matplotlib Axes (default: a new figure).
        title: the axes title (default: the map's ``long_name``).
        mark: the (y, x) point to mark; default the query cell in ``da.attrs`` (``query_<y>``/``query_<x>``
            or ``at_<y>``/``at_<x>``) when present.
        cmap: colour map; further ``kwargs`` go to ``pcolormesh`` (e.g. ``vmin``, ``vmax``).

    Returns:
        The Axes.
    """
    if not isinstance(da, xr.DataArray) or da.ndim != 2:
        raise TypeError(f"da must be a 2-D DataArray (y, x); got {getattr(da, 'dims', type(da).__name__)}")
    ax = _axes(ax)
    y, x = da.dims
    yv = da[y].values if y in da.coords else np.arange(da.shape[0])
    xv = da[x].values if x in da.coords else np.arange(da.shape[1])
    mesh = ax.pcolormesh(xv, yv, da.values, cmap=cmap, shading="nearest", **kwargs)
    ax.figure.colorbar(mesh, ax=ax, label=da.attrs.get("units", ""), shrink=0.8)
    if mark is None:
        for prefix in ("query_", "at_"):
            if f"{prefix}{y}" in da.attrs and f"{prefix}{x}" in da.attrs:
                mark = (da.attrs[f"{prefix}{y}"], da.attrs[f"{prefix}{x}"])
                break
    if mark is not None:
        ax.plot(mark[1], mark[0], marker="*", color="red", markersize=12, markeredgecolor="white")
    for dim, setter in ((x, ax.set_xlabel), (y, ax.set_ylabel)):
        units = da[dim].attrs.get("units", "") if dim in da.coords else ""
        setter(f"{dim} ({units})" if units else dim)
    ax.set_title(title or da.attrs.get("long_name", da.name or ""))
    return ax


def plot_history(model: Any, *, ax: Any = None, title: str | None = None) -> Any:
    """Training and validation loss against epoch (log scale), from ``model.history``.

    Args:
        model: a trained :class:`gridvit.Surrogate` (or its ``history`` Dataset).
        ax: matplotlib Axes to draw on (default: a new figure).
        title: the axes title.

    Returns:
        The Axes: training loss (solid) and validation loss (dashed, where there was a validation split);
        the learning rate on a twin axis (dotted, grey).

    Raises:
        TypeError: ``model`` is neither a Surrogate nor a history Dataset.
        ValueError: the history has no epochs (an untrained model, or a file written before histories).
    """
    hist = model if isinstance(model, xr.Dataset) else getattr(model, "history", None)
    if not isinstance(hist, xr.Dataset) or "loss" not in hist:
        raise TypeError("model must be a gridvit Surrogate or its history Dataset")
    if hist.sizes.get("epoch", 0) == 0:
        raise ValueError("the model's history has no epochs (untrained, or loaded from a file written before "
                         "histories were saved)")
    ax = _axes(ax)
    epoch = hist["epoch"].values
    ax.plot(epoch, hist["loss"].values, "o-", label="training loss")
    if np.isfinite(hist["val_loss"].values).any():
        ax.plot(epoch, hist["val_loss"].values, "s--", label="validation loss")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (area-weighted MSE, normalised)")
    lr = ax.twinx()
    lr.plot(epoch, hist["lr"].values, ":", color="0.5", label="learning rate")
    lr.set_ylabel("learning rate", color="0.5")
    ax.set_title(title or f"training history ({int(hist['samples'].values[-1])} windows seen, "
                 f"{float(hist['wall_time'].values[-1]):.0f} s)")
    ax.legend(fontsize="small", loc="best")
    return ax
