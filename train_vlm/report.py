"""Markdown reports of evaluation metrics: one model, or several side by side (base vs tuned).

Every figure is printed with its bootstrap interval, and every report says how many answers could not be
parsed and shows them (the first `MAX_SHOWN` per model; `metrics.json` lists them all).
"""

from __future__ import annotations

MAX_SHOWN = 10
ANSWER_CHARS = 300


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def with_interval(report: dict, name: str) -> str:
    """`0.625 [0.500, 0.750]` for metric `name` of a group report (— when undefined)."""
    value = report.get(name)
    interval = report.get("intervals", {}).get(name)
    if value is None:
        return "—"
    if not interval or interval["low"] is None:
        return _number(value)
    return f"{value:.3f} [{interval['low']:.3f}, {interval['high']:.3f}]"


def _support(report: dict) -> str:
    support = report["support"]
    return f"{report['n']} ({support.get('dr', 0)} DR / {support.get('no_dr', 0)} no DR)"


def _confidence(metrics_list: list[dict]) -> str:
    for metrics in metrics_list:
        for report in metrics["groups"].values():
            for interval in report.get("intervals", {}).values():
                return f"{100 * interval['confidence']:g} % stratified bootstrap intervals ({interval['n_resamples']} resamples)"
    return "no intervals"


def _unparseable_section(name: str, metrics: dict) -> list[str]:
    items = metrics["unparseable"]
    lines = [f"**{name}**: {len(items)} unparseable answer(s) (counted wrong)."]
    for item in items[:MAX_SHOWN]:
        answer = " ".join(item["answer"].split())
        answer = answer if len(answer) <= ANSWER_CHARS else answer[:ANSWER_CHARS] + " …"
        lines.append(f"- `{item['id']}` ({item['label']}, {item['fov_mm']:g} mm): {answer or '(empty)'}")
    if len(items) > MAX_SHOWN:
        lines.append(f"- … {len(items) - MAX_SHOWN} more in metrics.json")
    return lines + [""]


def _other_labels_section(named: dict[str, dict]) -> list[str]:
    labels = sorted({label for metrics in named.values() for label in metrics["other_labels"]})
    if not labels:
        return []
    lines = [
        "### Other labels (reported apart; not in the figures above)",
        "",
        "| label | n | " + " | ".join(f"{name}: called DR" for name in named) + " |",
        "| --- | --- | " + " | ".join("---" for _ in named) + " |",
    ]
    for label in labels:
        n = next(m["other_labels"][label]["n"] for m in named.values() if label in m["other_labels"])
        cells = []
        for metrics in named.values():
            entry = metrics["other_labels"].get(label)
            cells.append("—" if entry is None else f"{entry['called_dr']} ({100 * entry['called_dr_rate']:.0f} %)")
        lines.append(f"| {label} | {n} | " + " | ".join(cells) + " |")
    return lines + [""]


def comparison_report(named: dict[str, dict], *, title: str, preamble: list[str] = ()) -> str:
    """Several evaluations of the same images side by side (e.g. `{"base": ..., "tuned": ...}`)."""
    groups = list(dict.fromkeys(group for metrics in named.values() for group in metrics["groups"]))
    header = "| field | eyes | " + " | ".join(
        f"{name}: balanced accuracy | {name}: AUC | {name}: unparseable" for name in named
    ) + " |"
    lines = [f"# {title}", "", *preamble, "" if preamble else None]
    lines = [line for line in lines if line is not None]
    lines += [
        f"DR vs no DR; balanced accuracy and AUC with {_confidence(list(named.values()))}.",
        "",
        header,
        "| --- | --- | " + " | ".join("--- | --- | ---" for _ in named) + " |",
    ]
    for group in groups:
        reports = [metrics["groups"].get(group) for metrics in named.values()]
        first = next(report for report in reports if report is not None)
        cells = []
        for report in reports:
            if report is None:
                cells.append("— | — | —")
            else:
                cells.append(
                    f"{with_interval(report, 'balanced_accuracy')} | {with_interval(report, 'auc')} | "
                    f"{report['n_unparseable']}"
                )
        lines.append(f"| {group} | {_support(first)} | " + " | ".join(cells) + " |")
    lines.append("")
    lines += _other_labels_section(named)
    lines += ["### Unparseable answers", ""]
    for name, metrics in named.items():
        lines += _unparseable_section(name, metrics)
    prompts = [(name, metrics.get("prompts")) for name, metrics in named.items() if metrics.get("prompts")]
    if prompts:
        lines += ["### Prompts", ""]
        for name, used in prompts:
            lines.append(f"- {name} ({used['source']}): “{used['generation']}” / score: “{used['score']}”")
        lines.append("")
    return "\n".join(lines)


def evaluation_report(metrics: dict, *, title: str) -> str:
    return comparison_report({"model": metrics}, title=title)
