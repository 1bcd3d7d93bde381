"""One self-contained HTML page with every table and figure of a profile's run:
`python -m repsafe_lib.report --params FILE` (`make report`) writes `outputs/<profile>/report/index.html`.

It only reads artifacts (nothing is rerun), so it takes seconds and shows "not yet run" for the
parts whose notebooks have not run, and "unreadable: <file>: <why>" for a manifest or
`run_times.json` it can't parse. Each figure is redrawn from its tables (as notebook 08 does, so it
shows whichever notebooks ran) and embedded as PNG data, so the page can be mailed or archived
alone; the links to the source files and executed notebooks are relative.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import yaml

from repsafe_lib import results
from repsafe_lib.artifacts import write_text
from repsafe_lib.params import ParamsError, load_params, raw_params
from repsafe_lib.paths import profile_dir

REPORT_DIR = "report"
STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-top: 1px solid #ccc; padding-top: 0.8em; }
table { border-collapse: collapse; margin: 0.4em 0 0.8em; font-size: 12px; }
th, td { border-bottom: 1px solid #ddd; padding: 2px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.pair { display: flex; flex-wrap: wrap; gap: 1.5em; align-items: flex-start; }
.pair > div { overflow-x: auto; max-width: 100%; }
.source, .note { color: #555; font-size: 12px; }
.missing { color: #a33; font-weight: 600; }
img { max-width: 100%; border: 1px solid #eee; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; font-size: 12px; }
nav a { margin-right: 0.8em; }
"""


def _frame_html(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, na_rep="–", float_format=lambda v: f"{v:.4g}", border=0)


def _link(path: Path | str, text: str | None = None) -> str:
    href = html.escape(f"../{path}")
    return f'<a href="{href}">{html.escape(text or str(path))}</a>'


def _image(figure: plt.Figure, alt: str) -> str:
    """`figure` as an embedded PNG, saved as `artifacts.save_figure` saves it."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=150, bbox_inches="tight", metadata={"Software": None})
    plt.close(figure)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def item_html(item: results.Item) -> str:
    """An item's section: our tables (source file under each), the paper's beside them, the
    figure drawn from its tables (named under it); or which notebook to run."""
    spec = item.spec
    parts = [f'<h2 id="{spec.key}">{html.escape(spec.title)}</h2>']
    if not item.ran:
        missing = ", ".join(html.escape(m) for m in item.missing)
        parts.append(
            f'<p class="missing">not yet run: {html.escape(results.missing_note(item))}'
            f" (missing: {missing})</p>"
        )
    ours = [
        f"<div><h3>This run: {html.escape(t.caption)}</h3>{_frame_html(t.frame)}"
        f'<p class="source">source: {_link(t.source)}</p></div>'
        for t in item.tables
    ]
    paper = item.paper_table()
    theirs = [f'<div><h3>Paper</h3><p class="note">{html.escape(spec.paper_note)}</p>']
    theirs.append((_frame_html(paper) if paper is not None else "") + "</div>")
    parts.append(f'<div class="pair">{"".join(ours)}{"".join(theirs)}</div>')
    figure = results.draw_figure(item)
    if figure is not None:
        parts.append(_image(figure, spec.title))
        sources = ", ".join(_link(source) for source in item.figure_sources)
        parts.append(f'<p class="source">drawn from: {sources}</p>')
    return "\n".join(parts)


UNREADABLE = "unreadable"  # the key a manifest that can't be parsed is replaced by


def _json_object(path: Path) -> dict:
    """The JSON object in `path`; anything else is a ValueError naming the file and the fault."""
    try:
        value = json.loads(path.read_bytes())
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError
        raise ValueError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path}: a JSON {type(value).__name__}, not an object")
    return value


def _manifests(outputs: Path) -> dict[str, dict]:
    """Each notebook's manifest; one that can't be parsed is `{UNREADABLE: why}`."""
    found = {}
    for path in sorted(outputs.glob("*/manifest.json")):
        try:
            found[path.parent.name] = _json_object(path)
        except (OSError, ValueError) as error:
            found[path.parent.name] = {UNREADABLE: f"{error}; rerun notebook {path.parent.name}"}
    return found


def read_run_times(path: Path) -> dict[str, float]:
    """`run_times.json` (notebook -> wall seconds, and "total"); {} when there is none. A file
    that is not such a record is a ValueError naming it."""
    if not path.is_file():
        return {}
    times = _json_object(path)
    for name, seconds in times.items():
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise ValueError(f"{path}: {name!r} is {seconds!r}, not a number of seconds")
    return times


def _run_times(outputs: Path) -> dict[str, float]:
    try:
        return read_run_times(outputs / "run_times.json")
    except ValueError:
        return {}  # unreadable_html names the fault


def unreadable_html(outputs: Path, manifests: dict[str, dict]) -> str:
    """One line per run record the page could not parse, naming it, instead of a traceback."""
    problems = [m[UNREADABLE] for m in manifests.values() if UNREADABLE in m]
    try:
        read_run_times(outputs / "run_times.json")
    except ValueError as error:
        problems.append(f"{error}; the next pipeline run starts a fresh record")
    return "".join(f'<p class="missing">unreadable: {html.escape(p)}</p>' for p in problems)


def notebooks_table(
    outputs: Path, manifests: dict[str, dict], notebooks: list[str]
) -> pd.DataFrame:
    """Per notebook: its wall time in the last pipeline run, the commit and seed its manifest
    recorded, and the executed copy (relative links, rendered as HTML)."""
    times = _run_times(outputs)
    rows = []
    for name in notebooks:
        manifest = manifests.get(name, {})
        executed = outputs / "executed" / f"{name}.ipynb"
        rows.append(
            {
                "notebook": name,
                "wall time (s)": times.get(name),
                "git commit": UNREADABLE
                if UNREADABLE in manifest
                else (manifest.get("git_commit") or "–")[:10],
                "seed": str(manifest.get("seed", "–")),
                "executed copy": _link(f"executed/{name}.ipynb", "notebook")
                if executed.is_file()
                else "not yet run",
            }
        )
    if "total" in times:
        rows.append({"notebook": "total", "wall time (s)": times["total"], "seed": ""})
    return pd.DataFrame(rows)


def run_html(outputs: Path, manifests: dict[str, dict], params, notebooks: list[str]) -> str:
    """The run: profile, params (file text and hash), versions, and per-notebook times."""
    readable = {name: m for name, m in manifests.items() if UNREADABLE not in m}
    latest = readable[max(readable)] if readable else {}
    hashes = {m.get("params_hash") for m in readable.values()}
    stale = hashes - {params.fingerprint()}
    warning = (
        '<p class="missing">Some notebooks ran with other params than the file below '
        f"(params hashes {', '.join(sorted(map(str, hashes)))}); rerun them.</p>"
        if stale
        else ""
    )
    versions = ", ".join(f"{k} {v}" for k, v in latest.get("versions", {}).items())
    table = notebooks_table(outputs, manifests, notebooks).to_html(
        index=False, escape=False, na_rep="–", border=0
    )
    params_text = Path(params.source_file).read_text(encoding="utf-8")
    resolved = raw_params(Path(params.source_file))
    if resolved != yaml.safe_load(params_text):  # an `extends:` file: show what it resolved to
        params_text += "\n# resolved:\n" + yaml.safe_dump(resolved, sort_keys=False)
    return (
        f"<h2 id='run'>Run</h2><p>profile <b>{html.escape(params.profile)}</b>, seed {params.seed},"
        f" params hash {params.fingerprint()}; python {html.escape(latest.get('python', '–'))}"
        f" on {html.escape(latest.get('machine', '–'))}; {html.escape(versions)}</p>{warning}"
        f"{unreadable_html(outputs, manifests)}{table}"
        f"<details><summary>params: {html.escape(params.source_file)}</summary>"
        f"<pre>{html.escape(params_text)}</pre></details>"
    )


def judge_note(manifests: dict[str, dict]) -> str:
    manifest = manifests.get("06_evaluation", {})
    if "refusal_proxy" not in manifest.get("judges", []):
        return ""
    return (
        '<p class="note">Safety verdicts here come from the offline refusal proxy: a response'
        ' counts as "toxic" when it answers without a refusal phrase. It measures refusal, not'
        " harm, and is not comparable with the paper's Llama-Guard-2 / MD-Judge numbers.</p>"
    )


def _transfer_phrase(auroc: float) -> str:
    if auroc < 0.6:
        return "about chance: the reward does not recognise harm in real responses"
    if auroc < 0.75:
        return "weak transfer"
    return "the reward transfers"


def data_note(outputs: Path, params) -> str:
    """What the profile's pairs are, where they are the bundled synthetic demo: a pipeline smoke
    test, with this run's transfer figure when it measured one on data that isn't bundled."""
    source, copies = params.data.pairs.source, params.data.hub_copies or ""
    if source.startswith("demo:hub/") or copies.startswith("demo:"):
        return (
            '<p class="note">The data here are small synthetic copies, bundled with the suite, in'
            " the hub datasets' layouts: this run proves that the code runs, not what it finds.</p>"
        )
    if not source.startswith("demo:"):
        return ""
    note = (
        f"The preference pairs here are the suite's synthetic demo data ({html.escape(source)}):"
        " a test that the pipeline runs end to end, not a result about the method."
    )
    transfer, spec = outputs / "03_hybrid_reward" / "transfer.csv", params.data.transfer
    if transfer.is_file() and spec is not None and not spec.source.startswith("demo:"):
        table = pd.read_csv(transfer).set_index("scorer")
        auroc = float(table.loc["hybrid reward", "transfer_auroc"])
        note += (
            f" Scored on real labelled responses ({html.escape(spec.source)}), the reward fit on"
            f" them reaches AUROC {auroc:.3f}, {_transfer_phrase(auroc)} (see"
            ' <a href="#transfer">Transfer</a>).'
        )
    else:
        note += " Its transfer to real responses is not measured in this run (README, Demo data)."
    note += " For the method on real data, run the laptop profile."
    return f'<p class="note">{note}</p>'


def report_html(outputs: Path, params, notebooks: list[str]) -> str:
    items = results.gather(outputs, results.FigureLabels.of(params))
    manifests = _manifests(outputs)
    nav = " ".join(
        f'<a href="#{i.spec.key}">{html.escape(i.spec.title.split(":")[0])}</a>' for i in items
    )
    body = "\n".join(item_html(item) for item in items)
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>repsafe report: {html.escape(params.profile)}</title>"
        f"<style>{STYLE}</style></head><body>"
        f"<h1>repsafe: results of the {html.escape(params.profile)} profile</h1>"
        f"<nav><a href='#run'>Run</a> {nav}</nav>{data_note(outputs, params)}"
        f"{judge_note(manifests)}"
        f"{run_html(outputs, manifests, params, notebooks)}\n{body}</body></html>\n"
    )


def build_report(params, notebooks: list[str] | None = None) -> Path:
    """Write `outputs/<profile>/report/index.html` from the artifacts there; returns its path."""
    from repsafe_lib.pipeline import numbered_notebooks

    outputs = profile_dir(params.profile)
    notebooks = notebooks or [nb.stem for nb in numbered_notebooks()]
    return write_text(outputs / REPORT_DIR / "index.html", report_html(outputs, params, notebooks))


def _file_in_the_way(directory: Path) -> Path | None:
    """`directory` or its nearest existing ancestor, when that is not a directory."""
    existing = next((p for p in (directory, *directory.parents) if p.exists()), None)
    return existing if existing is not None and not existing.is_dir() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params/smol.yaml", help="params YAML file")
    args = parser.parse_args(argv)
    try:
        params = load_params(args.params)
    except ParamsError as error:
        print(f"[repsafe] {error}", file=sys.stderr)
        return 2
    if blocker := _file_in_the_way(profile_dir(params.profile)):
        print(
            f"[repsafe] nothing to report: {blocker} is a file, not a directory; move it away"
            f" and run `make reproduce PROFILE={params.profile}`",
            file=sys.stderr,
        )
        return 1
    if not profile_dir(params.profile).is_dir():
        print(
            f"[repsafe] nothing to report: {profile_dir(params.profile)} does not exist;"
            f" run `make reproduce PROFILE={params.profile}` first",
            file=sys.stderr,
        )
        return 1
    print(f"[repsafe] report: {build_report(params)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
