"""Constraints for Rasa on Python 3.11, derived from the lock at set-up time.

    python derive.py requirements/rasa.txt scripts/rasa-py311/constraints.txt > out.txt

Prints every pin of the lock (resolved on Python 3.10), without its hashes, except the
packages that constraints.txt overrides, then constraints.txt's own lines.
"""

import re
import sys


def name(requirement: str) -> str:
    """The normalized project name of a requirement line ("Scikit_Learn==1" -> "scikit-learn")."""
    return re.sub(r"[-_.]+", "-", re.split(r"[=<>!~;\[ ]", requirement, maxsplit=1)[0]).lower()


def requirements(path: str) -> list[str]:
    """The requirement lines of a pip requirements file, without comments, options or hashes."""
    out = []
    with open(path, encoding="utf-8") as fp:
        for line in fp:
            line = line.split("#", 1)[0].strip().rstrip("\\").strip()
            if line and re.match(r"[A-Za-z0-9]", line):
                out.append(line)
    return out


def main(lock: str, overrides: str) -> None:
    own = requirements(overrides)
    dropped = {name(line) for line in own}
    for line in [r for r in requirements(lock) if name(r) not in dropped] + own:
        print(line)


if __name__ == "__main__":
    main(*sys.argv[1:])
