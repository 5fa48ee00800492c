"""Which TensorFlow pip would install with keras-augtune, asked of pip's resolver (``--dry-run --report``).

Two scratch environments: one stands for a GPU user's, holding a metadata-only stand-in for
the CUDA-capable ``tensorflow`` distribution (same name and version as the real wheel: all the
resolver reads; nothing is downloaded or installed), one is fresh. For each case the script
records which ``tensorflow*`` / ``nvidia-*`` / ``jax`` / ``torch`` distributions pip would install.
The old spec (``tensorflow-cpu`` required on x86_64) can be checked with ``--old PATH``, a
checkout of it. Writes ``benchmarks/results/install_dry_run.json``; docs/install.md quotes it.

    python benchmarks/install_dry_run.py [--old /path/to/old/checkout]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "install_dry_run.json"
WATCHED = ("tensorflow", "tf-nightly", "nvidia-", "jax", "torch")


def _venv(path: pathlib.Path, tensorflow_version: str | None) -> pathlib.Path:
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    python = path / "bin" / "python"
    if tensorflow_version:  # a metadata-only installed `tensorflow` (pip reads only this)
        purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                 check=True, capture_output=True, text=True).stdout.strip()
        info = pathlib.Path(purelib) / f"tensorflow-{tensorflow_version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: tensorflow\nVersion: {tensorflow_version}\n")
        (info / "INSTALLER").write_text("pip\n")
        (info / "RECORD").write_text("")
    return python


def _dry_run(python: pathlib.Path, target: str, report: pathlib.Path) -> dict:
    command = [str(python), "-m", "pip", "install", "--dry-run", "--quiet", "--report", str(report), target]
    run = subprocess.run(command, capture_output=True, text=True)
    if run.returncode != 0:
        return {"command": " ".join(command[2:]), "error": run.stderr.strip().splitlines()[-1:]}
    installs = json.loads(report.read_text())["install"]
    names = sorted(f"{i['metadata']['name']}=={i['metadata']['version']}" for i in installs
                   if i["metadata"]["name"].lower().replace("_", "-").startswith(WATCHED))
    return {"command": f"pip install --dry-run --report report.json '{target.replace(str(ROOT), '.')}'",
            "installs": len(installs), "watched": names}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", help="a checkout of the old spec, to show what it did")
    parser.add_argument("--tensorflow-version", default="2.21.0", help="the stand-in's version (the newest release)")
    args = parser.parse_args(argv)
    cases = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        gpu = _venv(tmp / "gpu", args.tensorflow_version)
        fresh = _venv(tmp / "fresh", None)
        pip_version = subprocess.run([str(fresh), "-m", "pip", "--version"], capture_output=True, text=True).stdout.split()[1]
        plan = [("GPU user's environment (tensorflow installed)", gpu, str(ROOT)),
                ("GPU user's environment (tensorflow installed)", gpu, f"{ROOT}[tensorflow,test,docs]"),
                ("fresh environment", fresh, f"{ROOT}[tensorflow-cpu,test,docs]"),
                ("fresh environment", fresh, f"{ROOT}[tensorflow]"),
                ("fresh environment", fresh, f"{ROOT}[gpu]")]
        if args.old:
            plan.insert(0, ("GPU user's environment (tensorflow installed), OLD spec", gpu, args.old))
        for where, python, target in plan:
            result = _dry_run(python, target, tmp / "report.json")
            if args.old and target == args.old:
                result["command"] = result.get("command", "").replace(args.old, "<old checkout>")
                result["spec"] = "old: tensorflow-cpu required on x86_64"
            cases.append({"environment": where, **result})
            print(cases[-1], flush=True)
    OUT.write_text(json.dumps({
        "script": "python benchmarks/install_dry_run.py" + (" --old <old checkout>" if args.old else ""),
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "python": platform.python_version(),
        "machine": platform.machine(), "pip": pip_version,
        "tensorflow_stand_in": args.tensorflow_version, "cases": cases}, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
