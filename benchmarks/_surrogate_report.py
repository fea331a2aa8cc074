"""Tables, verdicts, README headline rows and the accuracy-vs-cost plot of ``surrogate_vs_stencil.py``
(all from its JSON payload)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

GOAL = 5.0  # equal-error speed-up to aim for on at least one PDE
USEFUL = 0.1  # only surrogate points at or below this nRMSE count for the headline
ACCURACY = {"burgers": {0.5: 0.05, 1.0: 0.1}, "navier_stokes": {1.0: 0.05}}  # nRMSE goals by T
CORRECTION_GOAL = 2.0  # the corrected model's error at most half its bare coarse scheme's
LABELS = {"pure": "gridvit (pure)", "corrected": "gridvit learned correction", "peer": "neuraloperator FNO (peer)"}
NOTES = {  # what the numbers cannot say by themselves
    "heat": "heat: the spectral propagator is exact for these band-limited fields (nRMSE at float32 roundoff "
            "from 32² up, one FFT pair per step), so no surrogate can win on accuracy or cost; the case checks "
            "that the comparison says so.",
}


def ratio_text(row: dict[str, Any]) -> str:
    """The speed ratio as a table cell: ``4.2×``, ``≥ 4.2×``, or the cheapest-point ratio with a caveat."""
    r = row["ratio"]
    if row["status"] == "more_accurate":
        return f"≥ {r:.3g}×"
    if row["status"] == "less_accurate":
        return f"n/a ({r:.3g}× vs the cheapest, more accurate, classical point)"
    return f"{r:.3g}×"


def verdict(pde: str, row: dict[str, Any]) -> str:
    """One plain sentence on who wins at this horizon."""
    r, who = row["ratio"], LABELS[row.get("model", "pure")]
    at = f"{pde} at T = {row['T']:g}, {who}"
    if row["status"] == "less_accurate":
        how = ("classical is both faster and more accurate" if r < 1
               else f"the surrogate is {r:.3g}× faster there but less accurate")
        return (f"{at}: nRMSE {row['surrogate_nrmse']:.3g}, less accurate than every classical point; against "
                f"the cheapest one {how} — the surrogate loses.")
    err = row["surrogate_nrmse"]
    useless = "" if err <= USEFUL else f" (nRMSE {err:.3g} > {USEFUL:g}: not counted)"
    if row["status"] == "more_accurate":
        return (f"{at}: more accurate than every classical candidate and at least {r:.3g}× faster than the most "
                f"accurate one{useless}.")
    if r < 1:
        return f"{at}: the surrogate loses — classical is {1 / r:.3g}× faster at its error{useless}."
    return f"{at}: {r:.3g}× faster than the classical front at equal error{useless}."


def counts(row: dict[str, Any]) -> bool:
    """Whether a comparison row may carry the headline: useful accuracy and an equal-error match."""
    return row["surrogate_nrmse"] <= USEFUL and row["status"] != "less_accurate"


# --- summary rows for benchmarks/README.md ----------------------------------------------------------

def _by_model(res: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """A PDE's comparison rows grouped by surrogate (results written before the three surrogates: 'pure')."""
    out: dict[str, list[dict[str, Any]]] = {}
    for r in res["comparison"]:
        out.setdefault(r.get("model", "pure"), []).append(r)
    return out


def _short(row: dict[str, Any]) -> str:
    return "n/a" if row["status"] == "less_accurate" else ratio_text(row)


def _at(rows: list[dict[str, Any]], t: float) -> dict[str, Any] | None:
    return next((r for r in rows if abs(r["T"] - t) < 1e-9), None)


def headline(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Summary rows: nRMSE and equal-error ratio per PDE, surrogate and horizon; the headline ratio among
    points with nRMSE ≤ 0.1 (goal ≥ 5×); and the accuracy, peer and correction goals where measured."""
    rows, best = [], None
    for pde, res in result["cases"].items():
        groups = _by_model(res)
        cells = [f"{m}: " + ", ".join(f"T={r['T']:g} {r['surrogate_nrmse']:.2g} ({_short(r)})" for r in rs)
                 for m, rs in groups.items()]
        rows.append({"result": f"{pde}: surrogate nRMSE (equal-error speed ratio) per horizon",
                     "value": "; ".join(cells), "goal": "", "met": None})
        for r in res["comparison"]:
            if counts(r) and (best is None or r["ratio"] > best[0]["ratio"]):
                best = (r, pde)
    value = f"none with nRMSE ≤ {USEFUL:g} at equal error" if best is None else (
        f"{best[0]['ratio']:.3g}× ({LABELS[best[0].get('model', 'pure')]}, {best[1]}, T={best[0]['T']:g}, "
        f"nRMSE {best[0]['surrogate_nrmse']:.2g})")
    rows.append({"result": f"best equal-error speed ratio, surrogate points with nRMSE ≤ {USEFUL:g}", "value": value,
                 "goal": f"≥ {GOAL:g}× on at least one PDE", "met": best is not None and best[0]["ratio"] >= GOAL})
    rows += accuracy_rows(result) + peer_rows(result) + correction_rows(result) + ceiling_rows(result)
    return rows


def accuracy_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The best gridvit surrogate's (pure or corrected) nRMSE against the issue's accuracy goals."""
    rows = []
    for pde, goals in ACCURACY.items():
        groups = _by_model(result["cases"].get(pde, {"comparison": []}))
        found = []
        for t, goal in goals.items():
            points = [r for m, rs in groups.items() if m != "peer" and (r := _at(rs, t)) is not None]
            if points:
                found.append((t, goal, min(points, key=lambda r: r["surrogate_nrmse"])))
        if len(found) < len(goals):
            continue
        rows.append({"result": f"{pde}: best gridvit nRMSE (pure or corrected)",
                     "value": "; ".join(f"T={t:g}: {r['surrogate_nrmse']:.3g} ({r.get('model', 'pure')})"
                                        for t, _, r in found),
                     "goal": "; ".join(f"T={t:g} ≤ {g:g}" for t, g, _ in found),
                     "met": all(r["surrogate_nrmse"] <= g for _, g, r in found)})
    return rows


def peer_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The pure gridvit surrogate against the peer (FNO) at every horizon, same data, budget and threads."""
    cells, met = [], True
    for pde, res in result["cases"].items():
        groups = _by_model(res)
        if "peer" not in groups or "pure" not in groups:
            continue
        pairs = list(zip(groups["pure"], groups["peer"]))
        cells.append(f"{pde} " + ", ".join(f"T={a['T']:g} {a['surrogate_nrmse']:.2g} vs {b['surrogate_nrmse']:.2g}"
                                           for a, b in pairs))
        met = met and all(a["surrogate_nrmse"] <= b["surrogate_nrmse"] for a, b in pairs)
    if not cells:
        return []
    return [{"result": "gridvit (pure) vs neuraloperator FNO nRMSE, same data, budget and threads",
             "value": "; ".join(cells), "goal": "gridvit ≤ FNO at every horizon", "met": met}]


def correction_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """How many times more accurate the learned correction is than its bare coarse scheme, per horizon."""
    cells, met = [], True
    for pde, res in result["cases"].items():
        corrected = _by_model(res).get("corrected")
        if corrected is None or "coarse" not in res:
            continue
        c = res["coarse"]
        gains = [bare / r["surrogate_nrmse"] for bare, r in zip(c["nrmse"], corrected)]
        cells.append(f"{pde} ({c['scheme']} {c['grid']}², {c['k']} step(s)/Δt) "
                     + ", ".join(f"T={r['T']:g} {g:.3g}×" for g, r in zip(gains, corrected)))
        met = met and all(g >= CORRECTION_GOAL for g in gains)
    if not cells:
        return []
    return [{"result": "learned correction: bare coarse scheme nRMSE ÷ corrected nRMSE", "value": "; ".join(cells),
             "goal": f"≥ {CORRECTION_GOAL:g}× at every horizon", "met": met}]


def ceiling_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The learned correction's speed ratio if its network cost nothing: classical time at the corrected
    model's error ÷ the bare coarse scheme's time (the correction runs that scheme, so it can never be faster),
    beside the share of the corrected step spent outside the scheme (the network, normalising, copies)."""
    cells = []
    for pde, res in result["cases"].items():
        corrected = _by_model(res).get("corrected")
        if corrected is None or "time_s" not in res.get("coarse", {}):
            continue
        bare = res["coarse"]["time_s"]
        cells.append(f"{pde} " + ", ".join(
            f"T={r['T']:g} {'≥ ' if r['status'] == 'more_accurate' else ''}{r['classical_s'] / b:.3g}× "
            f"(network share {1 - b / r['surrogate_s']:.0%})" if r["status"] != "less_accurate" else
            f"T={r['T']:g} n/a (less accurate than every classical point)" for r, b in zip(corrected, bare)))
    if not cells:
        return []
    return [{"result": "ceiling of the learned correction's speed ratio: a free network (classical s at equal "
                       "error ÷ bare coarse scheme s)", "value": "; ".join(cells), "goal": "", "met": None}]


# --- the markdown report -----------------------------------------------------------------------------

def _errs(values: list[float]) -> str:
    return " / ".join(f"{v:.3g}" for v in values)


def _best_cell(rows: list[dict[str, Any]]) -> str:
    """The best counted ratio among a PDE/horizon's surrogate rows, naming the surrogate."""
    good = [r for r in rows if counts(r)]
    if not good:
        return f"none ≤ {USEFUL:g}"
    r = max(good, key=lambda r: r["ratio"])
    return f"{ratio_text(r)} ({r['model']})"


def markdown(payload: dict[str, Any]) -> str:
    """The results page: headline, per-PDE summary, every surrogate point at equal error, costs, every point."""
    st, cases = payload["settings"], payload["cases"]
    load = st["load_average"]
    lines = [
        "# Surrogates vs classical stencils at equal error",
        "",
        f"Preset `{st['preset']}`: evaluation grid {st['grid']}², reference {st['grid'] * st['fine']}² "
        f"(restricted by spectral truncation), {st['test_samples']} test trajectories (unseen seed) advanced as "
        f"one batch, float32, {st['threads']} thread(s) for every method, device {st['device']}, wall times "
        f"= medians of {st['repeats']} runs after a warm-up. Three surrogates, each trained on the same "
        f"{st['train_samples']} cached trajectories for the same budget (s per surrogate: "
        + ", ".join(f"{p} {b:g}" for p, b in st["budget_s"].items()) + "): gridvit's ViT alone (pure), gridvit's "
        "learned correction on the PDE's cheapest stable coarse scheme (corrected; the bare scheme is shown "
        "beside it) and neuraloperator's FNO (peer). Errors: nRMSE against the reference. Speed ratio = "
        "classical time at the surrogate's error (log-log interpolation on the Pareto front of all stable "
        "schemes × resolutions × steps, each at its fastest shipped implementation, listed under *Every point*) "
        f"/ surrogate time; only points with nRMSE ≤ {USEFUL:g} at equal error count for the headline. "
        "Generated by `benchmarks/surrogate_vs_stencil.py`. Load average (1 min) at start / end: "
        f"{load['start'][0]:.1f} / {load['end'][0]:.1f} on {os.cpu_count()} cores (above ~0.5 other work shared "
        "the machine and the timings are noisy).",
        "",
        "## Headline and goals",
        "",
        "| result | value | goal | met |",
        "|---|---|---|---|",
    ]
    met = {True: "yes", False: "**no**", None: "—"}
    lines += [f"| {r['result']} | {r['value']} | {r['goal'] or '—'} | {met[r['met']]} |" for r in headline(payload)]
    lines += ["", "## nRMSE per PDE and horizon", "",
              "| PDE | T | pure | corrected | peer (FNO) | bare coarse scheme | best equal-error ratio, "
              f"nRMSE ≤ {USEFUL:g} |", "|---|---|---|---|---|---|---|"]
    for pde, res in cases.items():
        groups, c = _by_model(res), res["coarse"]
        for k, t in enumerate(res["case"]["T"]):
            cell = lambda m: f"{groups[m][k]['surrogate_nrmse']:.3g}" if m in groups else "skipped"  # noqa: E731
            lines.append(f"| {pde} | {t:g} | {cell('pure')} | {cell('corrected')} | {cell('peer')} | "
                         f"{c['nrmse'][k]:.3g} ({c['scheme']} {c['grid']}², {c['k']}/Δt) | "
                         f"{_best_cell([rs[k] for rs in groups.values()])} |")
    lines += ["", "## Every surrogate point at equal error", "",
              "| PDE | surrogate | T | nRMSE | s | classical s at equal error | speed ratio | counts | "
              "cheapest classical point at least as accurate | break-even (trajectories) |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for pde, res in cases.items():
        for row in res["comparison"]:
            c = row["cheapest_as_accurate"]
            cheap = "none" if c is None else f"{c['label']}: {c['nrmse']:.3g} in {c['time_s']:.3g} s"
            n = row["break_even_trajectories"]
            lines.append(f"| {pde} | {row['model']} | {row['T']:g} | {row['surrogate_nrmse']:.3g} | "
                         f"{row['surrogate_s']:.3g} | {row['classical_s']:.3g} | {ratio_text(row)} | "
                         f"{'yes' if counts(row) else 'no'} | {cheap} | {'never' if n is None else f'{n:.3g}'} |")
    lines += ["", "Where each surrogate stands:", ""]
    lines += [f"- {verdict(pde, row)}" for pde, res in cases.items() for row in res["comparison"]]
    lines += [f"- {pde}, {LABELS[m]}: skipped — {s['skipped']}" for pde, res in cases.items()
              for m, s in res["surrogates"].items() if "skipped" in s]
    lines += [f"- {NOTES[pde]}" for pde in cases if pde in NOTES]
    return "\n".join(lines + costs(payload) + every_point(payload))


def costs(payload: dict[str, Any]) -> list[str]:
    """The costs section: data, training, parameters, and how the coarse scheme was chosen."""
    lines = ["", "## Costs of the surrogates", "",
             "Data are generated once and cached (`benchmarks/.cache/`); the generation time is the one it took "
             "when they were made.", "",
             "| PDE | surrogate | Δt | training data | data generation s | training s | parameters | model |",
             "|---|---|---|---|---|---|---|---|"]
    for pde, res in payload["cases"].items():
        d = res["train_data"]
        for m, s in res["surrogates"].items():
            if "skipped" in s:
                continue
            model = ", ".join(f"{k} {v}" for k, v in s["model"].items())
            lines.append(f"| {pde} | {m} | {res['case']['step']:g} | {d['samples']} trajectories × {d['steps']} steps"
                         f"{' (cached)' if d['cached'] else ''} | {d['generation_s']:.3g} | {s['train_s']:.3g} | "
                         f"{s['parameters']:,} | {model} |")
    lines += ["", "The coarse scheme under the learned correction: the cheapest candidate stable on the training "
              "data at the evaluation grid, dt = Δt / k at 0.9 of its stability limit.", "",
              "| PDE | candidate | k (steps per Δt) | dt | stable on the training data | s for the training set |",
              "|---|---|---|---|---|---|"]
    for pde, res in payload["cases"].items():
        for c in res["coarse"]["candidates"]:
            chosen = " (chosen)" if c["scheme"] == res["coarse"]["scheme"] else ""
            stable = "yes" if c["stable"] else "no"
            lines.append(f"| {pde} | {c['scheme']}{chosen} | {c['k']} | {c['dt']:.3g} | {stable} | {c['seconds']:.3g} |")
    return lines


def every_point(payload: dict[str, Any]) -> list[str]:
    """Every classical candidate, the bare coarse scheme and every surrogate, with its implementation."""
    st = payload["settings"]
    lines = ["", "## Every point", "",
             "| PDE | method | implementation | grid | step | dt | nRMSE per horizon | s per horizon |",
             "|---|---|---|---|---|---|---|---|"]
    for pde, res in payload["cases"].items():
        for p in res["classical"]:
            errs, times = (_errs(p["nrmse"]), _errs(p["time_s"])) if p["stable"] else ("unstable", "—")
            lines.append(f"| {pde} | {p['scheme']} | {p['implementation']} | {p['grid']}² | {p['step']} | "
                         f"{p['dt']:.3g} | {errs} | {times} |")
        c = res["coarse"]
        lines.append(f"| {pde} | bare coarse: {c['scheme']} | {c['implementation']} | {c['grid']}² | {c['k']}/Δt | "
                     f"{c['dt']:.3g} | {_errs(c['nrmse'])} | {_errs(c['time_s'])} |")
        for m, s in res["surrogates"].items():
            if "skipped" not in s:
                lines.append(f"| {pde} | **{LABELS[m]}** | {s['implementation']} | {st['grid']}² | 1/Δt | "
                             f"{res['case']['step']:g} | {_errs(s['nrmse'])} | {_errs(s['time_s'])} |")
    return lines + ["", "![accuracy vs cost](surrogate_vs_stencil.png)"]


def plot(payload: dict[str, Any], path: Path) -> None:
    """One log-log panel per PDE: wall time vs nRMSE, classical points per scheme, fronts, surrogates."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = payload["cases"]
    fig, axes = plt.subplots(1, len(cases), figsize=(5.2 * len(cases), 4.6), squeeze=False)
    markers, sur_markers = "osD^v", {"pure": "*", "corrected": "P", "peer": "X"}
    for ax, (pde, res) in zip(axes[0], cases.items()):
        horizons = res["case"]["horizons"]
        colours = plt.cm.viridis(np.linspace(0.0, 0.85, len(horizons)))
        schemes = sorted({p["scheme"] for p in res["classical"]})
        groups = _by_model(res)
        for k, col in enumerate(colours):
            for j, name in enumerate(schemes):
                pts = [(p["time_s"][k], p["nrmse"][k]) for p in res["classical"] if p["stable"] and p["scheme"] == name]
                if pts:
                    ax.scatter(*zip(*pts), marker=markers[j % len(markers)], color=col, s=18, alpha=0.6,
                               label=name if k == 0 else None)
            ax.plot(*zip(*next(iter(groups.values()))[k]["front"]), color=col, lw=1, ls="--")
            for m, rows in groups.items():
                ax.scatter([rows[k]["surrogate_s"]], [rows[k]["surrogate_nrmse"]], marker=sur_markers[m], s=120,
                           color=col, edgecolor="k", zorder=5, label=LABELS[m] if k == 0 else None)
        ax.axhline(USEFUL, color="grey", lw=0.8, ls=":")
        ax.set(xscale="log", yscale="log", xlabel="wall time to T (s)", ylabel="nRMSE vs reference", title=pde)
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Accuracy vs cost: classical schemes (small markers; dashed: Pareto front per horizon, colour = "
                 f"horizon), surrogates (★ pure, ✚ corrected, ✖ FNO); dotted: nRMSE {USEFUL:g}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
