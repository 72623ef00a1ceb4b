"""`make test` several times in a row (three by default) in a fresh clone of this
repository, with CPU-burning processes beside it: the suite must pass on a busy machine, as
a new user runs it. Called by `make test-under-load` (docs/testing.md); it exits non-zero if
any run fails."""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

ROOT = Path(__file__).resolve().parents[1]
# pytest's summary line: "==== 640 passed, 2 warnings in 251.02s (0:04:11) ====".
RESULT = re.compile(r"\b\d+ (passed|failed|errors?)\b.* in [\d.]+s")
# What a make run passes down to a make it starts: the clone's must read only its own.
MAKE_VARIABLES = ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES", "VIRTUAL_ENV")
PASSED_ON = ("TEST_DATABASE_URL", "TEST_REDIS_URL", "PYTEST_WORKERS", "PYTEST_ARGS")


def say(text: str, stream: TextIO = sys.stdout) -> None:
    stream.write(text + "\n")
    stream.flush()


def new_user_env() -> dict[str, str]:
    """This environment as a new user's shell has it: no virtualenv of this checkout on
    the PATH (the clone must build its own), nothing a calling make passes down."""
    env = {name: value for name, value in os.environ.items() if name not in MAKE_VARIABLES}
    env["PATH"] = os.pathsep.join(
        entry for entry in env.get("PATH", "").split(os.pathsep) if entry and not Path(entry).is_relative_to(ROOT)
    )
    return env


@contextmanager
def burning(count: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``count`` processes each keeping one core busy, stopped (by their pids) on the way out."""
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield burners
    finally:
        for burner in burners:
            burner.terminate()
        for burner in burners:
            burner.wait()


def make(target: str, clone: Path, log: Path, env: dict[str, str]) -> tuple[int, float]:
    """Run ``make target`` in ``clone`` with its output in ``log``: the exit code and seconds."""
    variables = [f"{name}={os.environ[name]}" for name in PASSED_ON if os.environ.get(name)]
    began = time.monotonic()
    with log.open("wb") as output:
        code = subprocess.call(
            ["make", target, *variables], cwd=clone, env=env, stdout=output, stderr=subprocess.STDOUT
        )
    return code, time.monotonic() - began


def result_line(log: Path) -> str:
    lines = log.read_text(errors="replace").splitlines()
    found = [line.strip("= ") for line in lines if RESULT.search(line)]
    return found[-1] if found else "no pytest summary (a check before pytest failed?)"


def tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="make test this many times in a row (3)")
    parser.add_argument("--burners", type=int, default=2, help="CPU-burning processes beside it (2)")
    parser.add_argument("--keep", action="store_true", help="keep the clone and its logs even if every run passed")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="algotrader-under-load-"))
    clone = folder / "algotrader"
    env = new_user_env()
    commit = subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True).strip()
    subprocess.check_call(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(clone)], env=env)
    say(f"fresh clone of {commit} (committed work only) in {clone}")

    code, seconds = make("install-dev", clone, folder / "install.log", env)
    say(f"install-dev (its own .venv): exit {code} in {seconds:.0f} s")
    if code != 0:
        say(tail(folder / "install.log"), sys.stderr)
        return 1

    failed = 0
    with burning(args.burners) as burners:
        say(f"{len(burners)} CPU burners running (pids {', '.join(str(b.pid) for b in burners)})")
        for run in range(1, args.runs + 1):
            log = folder / f"run-{run}.log"
            code, seconds = make("test", clone, log, env)
            verdict = "passed" if code == 0 else f"FAILED (exit {code})"
            say(f"run {run}/{args.runs}: {verdict} in {seconds:.0f} s: {result_line(log)}")
            if code != 0:
                failed += 1
                say(tail(log), sys.stderr)
    say("CPU burners stopped")

    if failed or args.keep:
        say(f"logs: {folder}")
    else:
        shutil.rmtree(folder)
    say(f"{args.runs - failed} of {args.runs} runs passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
