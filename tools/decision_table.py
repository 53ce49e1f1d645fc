#!/usr/bin/env python3
"""The NB201 rows of BENCHMARKS.md's decision-confidence table, from finished run folders.

    python3 tools/decision_table.py --agnas RUNS/agnas/seed-* --random RUNS/random/seed-* \
        --until 0.9 --min-epochs 5 [--agnas-bin target/release/agnas]

For fixed-epoch AGNAS searches with a held-out pass every epoch it prints, per seed and as mean ± std: the
NAS-Bench-201 CIFAR-10 test accuracy of the found cell, of the same importances with `none` allowed, of where
`--until-decided P` would have stopped (the first pass after --min-epochs whose decisions equal the previous pass's,
all at least P sure in both: the rule of `agnas search --until-decided`, which trains the identical run up to there),
with the time that stop saves, and the architecture confidence; then the Pearson correlation between architecture
confidence and accuracy, and the random baseline's rows. Accuracies of architectures not stored in a result come
from `agnas bench201 query`.

With --random-budget-minutes M the random rows are those of a budget of M minutes read off longer runs: the
candidates are drawn and trained independently of the budget, so a run's first candidates up to where
`agnas baseline random` would have stopped at M minutes (the same rule on the same recorded seconds) are the run it
would have made with `--budget-minutes M`. With --random-beside each random run is read, the same way, at the
`train_seconds` of the AGNAS run (among --agnas) with its seed: for pairs run side by side, one thread each, so that
both methods see the same machine throughout (a wall-clock budget taken from a run made earlier is only as equal as
the machine's speed was steady). `--random-beside 0.5` reads them at half that time: a search's epochs all cost the
same, so half of a 50-epoch search's seconds is the time of a 25-epoch search beside the same random run.
"""
import argparse
import json
import statistics
import subprocess
from pathlib import Path


def load(path):
    return json.loads(Path(path).read_text())


def c10(agnas_bin, arch, cache={}):
    if arch not in cache:
        out = subprocess.run([agnas_bin, "bench201", "query", arch], check=True, capture_output=True, text=True)
        cache[arch] = json.loads(out.stdout)["c10_test"]
    return cache[arch]


def decided_at(passes, p, min_epochs):
    """(epoch, pass) where `--until-decided p` stops, or None."""
    def sure(c):
        return all(d.get("confidence") is not None and d["confidence"] >= p for d in c["decisions"])

    assessed = [e for e in passes if e.get("confidence") and e["confidence"].get("architecture") is not None]
    for before, now in zip(assessed, assessed[1:]):
        a, b = before["confidence"], now["confidence"]
        same = [d["choice"] for d in a["decisions"]] == [d["choice"] for d in b["decisions"]]
        if now["epoch"] >= min_epochs and same and sure(a) and sure(b):
            return now
    return None


def arch_of(confidence):
    ops = [d["choice"] for d in confidence["decisions"]]
    return f"|{ops[0]}~0|+|{ops[1]}~0|{ops[2]}~1|+|{ops[3]}~0|{ops[4]}~1|{ops[5]}~2|"


def candidates_within(seconds, budget):
    """How many candidates `agnas baseline random` trains with `budget` seconds, given the recorded seconds of its
    first ones: the stopping rule of baseline::random (no candidate starts that the mean so far says would end past
    the budget). One more than recorded when the rule would start the next."""
    n, spent = 0, 0.0
    while not (n and spent + spent / n > budget):
        if n == len(seconds):
            return n + 1
        spent += seconds[n]
        n += 1
    return n


def random_at(run, result, minutes):
    """What `agnas baseline random --budget-minutes minutes` would have chosen: (arch, candidates, valid_acc, seconds)."""
    if minutes > result["budget_minutes"]:
        raise SystemExit(f"{run}: its budget was {result['budget_minutes']} minutes, less than {minutes}")
    recorded = [json.loads(line) for line in (Path(run) / "candidates.jsonl").read_text().splitlines()]
    done = recorded[:candidates_within([c["seconds"] for c in recorded], minutes * 60.0)]
    best = max(done, key=lambda c: c["valid_acc"])  # the first of the best, as the tool picks
    return best["arch"], len(done), best["valid_acc"], sum(c["seconds"] for c in done)


def cell(arch):
    """An arch string inside a Markdown table cell."""
    return "`" + arch.replace("|", "\\|") + "`"


def mean_std(values):
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} ± {sd:.2f}"


def pearson(xs, ys):
    xs, ys = zip(*[(x, y) for x, y in zip(xs, ys) if x is not None]) if any(x is not None for x in xs) else ([], [])
    if len(xs) < 3 or statistics.pstdev(xs) == 0 or statistics.pstdev(ys) == 0:
        return None
    mx, my = statistics.mean(xs), statistics.mean(ys)
    cov = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    return cov / (sum((x - mx) ** 2 for x in xs) * sum((y - my) ** 2 for y in ys)) ** 0.5


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agnas", nargs="+", default=[], help="fixed-epoch search folders")
    ap.add_argument("--random", nargs="+", default=[], help="agnas baseline random folders")
    ap.add_argument("--until", type=float, default=0.9)
    ap.add_argument("--min-epochs", type=int, default=5)
    ap.add_argument("--agnas-bin", default="target/release/agnas")
    ap.add_argument("--random-budget-minutes", type=float, help="read the random runs at this smaller budget")
    ap.add_argument("--random-beside", type=float, nargs="?", const=1.0, metavar="SHARE",
                    help="read each random run at the time (times SHARE, default 1) of the AGNAS run with its seed")
    args = ap.parse_args()

    if args.random_beside is not None and args.random_budget_minutes is not None:
        ap.error("--random-beside and --random-budget-minutes are two budgets: give one")
    agnas_seconds = {}
    cols = {"found": [], "with none": [], "until-decided": [], "saved %": [], "confidence": [], "minutes": []}
    if args.agnas:
        print("| seed | found | c10_test | with `none` | until-decided (epoch) | c10_test | saved | arch conf. | min |")
        print("|---|---|---:|---:|---|---:|---:|---:|---:|")
    for run in args.agnas:
        r = load(Path(run) / "result.json")
        metrics = [json.loads(line) for line in (Path(run) / "metrics.jsonl").read_text().splitlines()]
        passes = load(Path(run) / "importances.json")
        found = r["bench201"]["c10_test"]
        other = r["other_derivation"]["bench201"]["c10_test"]
        stop = decided_at(passes, args.until, args.min_epochs)
        if stop is None:
            until_arch, until_acc, epoch, saved = r["arch"], found, r["epochs"], 0.0
        else:
            epoch = stop["epoch"]
            until_arch = arch_of(stop["confidence"])
            until_acc = c10(args.agnas_bin, until_arch)
            total = sum(m["seconds"] for m in metrics)
            saved = 100.0 * sum(m["seconds"] for m in metrics if m["epoch"] > epoch) / total
        conf = r["confidence"]["architecture"]
        minutes = r["train_seconds"] / 60.0
        agnas_seconds[r["seed"]] = r["train_seconds"]
        for key, v in zip(cols, [found, other, until_acc, saved, conf, minutes]):
            cols[key].append(v)
        print(f"| {r['seed']} | {cell(r['arch'])} | {found:.2f} | {other:.2f} | ep. {epoch} | {until_acc:.2f} | "
              f"{saved:.0f} % | {'–' if conf is None else f'{conf:.3f}'} | {minutes:.1f} |")
    if args.agnas:
        print(f"| mean ± std | | {mean_std(cols['found'])} | {mean_std(cols['with none'])} | | "
              f"{mean_std(cols['until-decided'])} | {mean_std(cols['saved %'])} % | {mean_std(cols['confidence'])} | "
              f"{mean_std(cols['minutes'])} |")
        rho = pearson(cols["confidence"], cols["found"])
        assessed = sum(c is not None for c in cols["confidence"])
        print(f"\nPearson r(architecture confidence, c10_test) over {assessed} runs: "
              + ("–" if rho is None else f"{rho:.2f}"))
    if args.random:
        print("\n| seed | random search: best on validation | candidates | valid acc % | c10_test | min |")
        print("|---|---|---:|---:|---:|---:|")
        accs = []
        for run in args.random:
            r = load(Path(run) / "result.json")
            budget = args.random_budget_minutes
            if args.random_beside is not None:
                if r["seed"] not in agnas_seconds:
                    raise SystemExit(f"{run}: no AGNAS run with seed {r['seed']} among --agnas")
                budget = args.random_beside * agnas_seconds[r["seed"]] / 60.0
            if budget is None:
                arch, n, valid, seconds = r["arch"], r["candidates"], r["valid_acc"], r["train_seconds"]
                acc = r.get("bench201", r.get("record"))["c10_test"]  # earlier runs: `record`
            else:
                arch, n, valid, seconds = random_at(run, r, budget)
                acc = c10(args.agnas_bin, arch)
            accs.append(acc)
            print(f"| {r['seed']} | {cell(arch)} | {n} | {100 * valid:.2f} | {acc:.2f} | {seconds / 60:.1f} |")
        print(f"| mean ± std | | | | {mean_std(accs)} | |")


if __name__ == "__main__":
    main()
