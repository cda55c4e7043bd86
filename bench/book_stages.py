"""`python -m bench.book_stages --profile quick`: what a built book's stages cost, read from
the build's own records (no run, no page is executed here).

- training: the build's training stage in wall time (`results/<profile>/provenance.json`,
  `train_seconds`: every run it trained, `--jobs` at a time; each training process also keeps
  its run's test-split probe), and the sum of the runs' own training times (each run's
  `provenance.json`), the runs the pages read;
- pages: each executed notebook's wall time (`book/executed/.executed.json`), the reference
  pages included, their sum, and the notebook stage's wall time (`notebooks_seconds`, the
  pages `--jobs` at a time, each on cores // jobs threads). The ratio of that stage to
  training is the one the book's speed is judged by (the pages should read what the runs and
  the earlier pages computed, not compute it again); the sum's ratio is given beside it.

Writes bench/results/<machine>-book-<profile>.json with the commit the pages were executed at.
A page executed by an earlier build (unchanged since) keeps that build's time, so time a book
whose pages this build executed (`rm book/executed/.executed.json` forces them all).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

from synclib.files import atomic_write_text, read_json
from synclib.profile import repo_root
from synclib.store import RunStore


def stages(profile: str) -> dict:
    root = repo_root()
    prov = read_json(root / "results" / profile / "provenance.json", what="the build's provenance")
    done = read_json(root / "book" / "executed" / ".executed.json", what="the record of executed notebooks")
    pages = {name: rec["record"]["wall_seconds"] for name, rec in done.items()
             if rec["record"].get("profile", profile) == profile and rec["record"].get("ok")}
    commits = sorted({rec["record"].get("commit") for rec in done.values()} - {None})
    hashes = sorted({h for a in prov.get("artifacts", {}).values() for h in a.get("hashes", [])})
    store = RunStore()
    run_s = {}
    for h in hashes:
        p = store.path(h) / "provenance.json"
        if p.is_file():
            run_s[h] = read_json(p, what="a run's provenance").get("seconds")
            parent = read_json(store.path(h) / "job.json", what="a run's job").get("parent")
            if parent and parent not in run_s and (store.path(parent) / "provenance.json").is_file():
                run_s[parent] = read_json(store.path(parent) / "provenance.json", what="a run's provenance")["seconds"]
    train_wall = prov.get("train_seconds")
    total_pages = sum(pages.values())
    stage = prov.get("notebooks_seconds", total_pages)  # a build before the stage was timed: one page at a time
    return {"profile": profile, "commits": commits, "train_wall_s": train_wall, "runs": len(run_s),
            "runs_train_s_sum": round(sum(v for v in run_s.values() if v), 1), "pages_s": pages,
            "pages_total_s": round(total_pages, 1), "pages_wall_s": stage, "pages_jobs": prov.get("notebooks_jobs", 1),
            "pages_over_training": round(stage / train_wall, 3) if train_wall else None,
            "pages_sum_over_training": round(total_pages / train_wall, 3) if train_wall else None}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.book_stages", description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    ap.add_argument("--name", default=None, help="the results file's name (default: <machine>-book-<profile>)")
    args = ap.parse_args(argv)
    rec = stages(args.profile)
    rec["machine"] = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()}
    name = args.name or f"cpu-{os.cpu_count()}core-book-{args.profile}"
    out = Path(args.out) / f"{name}.json"
    atomic_write_text(out, json.dumps(rec, indent=2))
    ratio = (f"{rec['pages_over_training']:.1%} of training" if rec["pages_over_training"] is not None else
             "no ratio: this build trained nothing (time a build that trained its runs)")
    print(f"training {rec['train_wall_s']} s (wall; the runs' own times sum to {rec['runs_train_s_sum']} s), "
          f"pages {rec['pages_wall_s']} s, {rec['pages_jobs']} at a time (their own times sum to "
          f"{rec['pages_total_s']} s): {ratio}. Wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
