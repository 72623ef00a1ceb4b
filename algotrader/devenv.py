"""Writes a local ``.env`` for ``make run``: ``.env.example`` with fresh random values
for every secret, so that a development machine never runs on a published key.
An existing ``.env`` is left as it is."""

import base64
import os
import secrets
import sys
from pathlib import Path

GENERATED = {
    "SECRET_KEY": lambda: secrets.token_urlsafe(50),
    "JWT_SIGNING_KEY": lambda: secrets.token_urlsafe(50),
    "FIELD_ENCRYPTION_KEYS": lambda: base64.urlsafe_b64encode(os.urandom(32)).decode(),
    "FLOWER_BASIC_AUTH": lambda: f"operator:{secrets.token_urlsafe(12)}",
}


def write_env(example: Path, target: Path) -> bool:
    if target.exists():
        return False
    lines = []
    for line in example.read_text().splitlines():
        name, sep, _ = line.partition("=")
        if sep and not line.lstrip().startswith("#") and name.strip() in GENERATED:
            line = f"{name.strip()}={GENERATED[name.strip()]()}"
        lines.append(line)
    target.write_text("\n".join(lines) + "\n")
    target.chmod(0o600)
    return True


if __name__ == "__main__":
    root = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    if write_env(root / ".env.example", root / ".env"):
        print("wrote .env with freshly generated secrets")  # noqa: T201 (a command-line script)
