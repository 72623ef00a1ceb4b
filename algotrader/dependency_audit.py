"""`make audit` (part of `make test`): the installed, pinned dependencies checked against a
vulnerability database by pip-audit, through OSV or else PyPI's advisory service. Where
neither answers (no route out, as on this project's CI), it says so plainly and does not
pass the check off as done; ``AUDIT_REQUIRED=1`` makes that a failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

SERVICES = ("osv", "pypi")


def audit_with(service: str) -> list[dict[str, Any]] | None:
    """The installed packages with known vulnerabilities, per ``service``; None if the service
    did not answer (pip-audit then prints no report, only its error) or could not look a single
    package up (a proxy answering 404 for every one: "0 vulnerable" would then be a lie)."""
    result = subprocess.run(  # noqa: S603 - a fixed command line
        [
            sys.executable,
            "-m",
            "pip_audit",
            "--vulnerability-service",
            service,
            "--format",
            "json",
            "--progress-spinner",
            "off",
            "--skip-editable",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    try:
        report = json.loads(result.stdout)
    except ValueError:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"audit: {service} did not answer: {last[:300]}", file=sys.stderr)
        return None
    dependencies = report.get("dependencies", [])
    audited = [dependency for dependency in dependencies if "skip_reason" not in dependency]
    skipped = len(dependencies) - len(audited)
    if not audited:
        print(f"audit: {service} could not look up any of {skipped} packages", file=sys.stderr)
        return None
    if skipped:
        print(f"audit: {skipped} packages not found by {service}, not audited", file=sys.stderr)
    return [dependency for dependency in audited if dependency.get("vulns")]


def main() -> int:
    for service in SERVICES:
        vulnerable = audit_with(service)
        if vulnerable is None:
            continue
        for dependency in vulnerable:
            ids = ", ".join(vuln["id"] for vuln in dependency["vulns"])
            print(f"audit: {dependency['name']} {dependency['version']}: {ids}")
        print(f"audit: {len(vulnerable)} vulnerable packages (checked with {service})")
        return 1 if vulnerable else 0
    print(
        "audit: NOT CHECKED - no vulnerability service (OSV, PyPI) answered from this machine; "
        "run `make audit` where one does (README: what CI checks)"
    )
    return 1 if os.environ.get("AUDIT_REQUIRED") == "1" else 0


if __name__ == "__main__":
    sys.exit(main())
