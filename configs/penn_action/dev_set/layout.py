"""Lay out the real-video development set of the bundled ``penn-action`` model from its sources.

The clips are public GitHub files whose footage rights are unknown, so they are never committed:
``provenance.csv`` (next to this file) pins each one (repository, commit, path, md5, class, and the
note of the eye check) and this script rebuilds the folder from local clones of those repositories::

    python configs/penn_action/dev_set/layout.py --mirrors /work/.mirror [-o dev_clips]

``--mirrors`` holds one git clone per repository, as ``owner+name/repo`` (the layout of the
project's fetch tool), ``owner+name`` or ``owner/name``; rows whose repo is ``shared`` come from
``../shared`` (the project's test data). Every file is checked against its md5. The result::

    dev_clips/penn/<class>/<name>.<ext>     in-vocabulary clips (15 Penn Action classes)
    dev_clips/ood/<name>.<ext>              out-of-vocabulary clips (for the "unknown" threshold)
    dev_clips/penn_annotations.txt          'path label' lines for ``posec3d demo-folder --annotations``
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
PROVENANCE = HERE / "provenance.csv"


def read_provenance(path: Path = PROVENANCE) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _clone_dir(mirrors: Path, repo: str) -> Path:
    owner, name = repo.split("/")
    for cand in (mirrors / f"{owner}+{name}" / "repo", mirrors / f"{owner}+{name}", mirrors / owner / name):
        if cand.is_dir():
            return cand
    raise FileNotFoundError(f"{repo}: no clone under {mirrors} (clone https://github.com/{repo} there)")


def read_source(row: dict, mirrors: Path, shared: Path) -> bytes:
    if row["repo"] == "shared":
        return (shared / row["path"]).read_bytes()
    git_dir = _clone_dir(mirrors, row["repo"])
    return subprocess.run(["git", "-C", str(git_dir), "show", f"{row['commit']}:{row['path']}"],
                          check=True, capture_output=True).stdout


def target_path(row: dict, out: Path) -> Path:
    ext = Path(row["path"]).suffix.lower()
    if row["split"] == "penn":
        return out / "penn" / row["label"] / f"{row['name']}{ext}"
    return out / "ood" / f"{row['name']}{ext}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mirrors", type=Path, required=True, help="Folder of git clones of the source repositories.")
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    parser.add_argument("-o", "--out", type=Path, default=REPO / "dev_clips")
    args = parser.parse_args()
    rows = read_provenance()
    bad = 0
    for row in rows:
        dest = target_path(row, args.out)
        try:
            data = read_source(row, args.mirrors, args.shared)
        except (OSError, subprocess.CalledProcessError) as e:
            print(f"{row['name']}: cannot read {row['repo']}:{row['path']} ({e})", file=sys.stderr)
            bad += 1
            continue
        if hashlib.md5(data).hexdigest() != row["md5"]:
            print(f"{row['name']}: md5 mismatch for {row['repo']}:{row['path']}", file=sys.stderr)
            bad += 1
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
    lines = [f"{target_path(r, args.out).relative_to(args.out / 'penn').as_posix()} {r['label']}"
             for r in rows if r["split"] == "penn"]
    (args.out / "penn_annotations.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{args.out}: {len(rows) - bad} of {len(rows)} clips "
          f"({sum(r['split'] == 'penn' for r in rows)} Penn classes, {sum(r['split'] == 'ood' for r in rows)} out of vocabulary)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
