#!/usr/bin/env python3
"""Summarise Robot Framework output.xml files of the NGSI-LD test suite.

  summary.py                      every results/*/output.xml under /work/conformance/results
  summary.py DIR_OR_XML ...       given result folders / output.xml files
  summary.py --totals XML         one line: "N passed, N failed, N skipped (total T, pass rate P%)"
  summary.py --no-failures ...    per-group table only

For each group: passed / failed / skipped / total / pass rate, then every failing test with
the first line of its failure message. Standard library only (works with or without the venv).
"""
import glob
import os
import sys
import xml.etree.ElementTree as ET

RESULTS_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def iter_tests(suite_el, path=()):
    name = suite_el.get("name", "")
    here = path + (name,)
    for child in suite_el:
        if child.tag == "suite":
            yield from iter_tests(child, here)
        elif child.tag == "test":
            yield here, child


def test_status(test_el):
    # <status> that is a direct child of <test> is the test's final status
    for child in test_el:
        if child.tag == "status":
            return child.get("status"), (child.text or "").strip()
    return "NOT RUN", ""


def suite_error(root):
    """Suite-level failures (setup/teardown) that make every test fail the same way."""
    top = root.find("suite")
    if top is None:
        return ""
    st = top.find("status")
    return (st.text or "").strip() if st is not None else ""


def first_line(msg, width=200):
    lines = [ln.strip() for ln in msg.strip().splitlines() if ln.strip()]
    line = lines[0] if lines else ""
    # "Setup failed:" / "Several failures occurred:" carry the real reason on the next line
    if line.endswith(":") and len(lines) > 1:
        line = line + " " + lines[1]
    return line if len(line) <= width else line[: width - 3] + "..."


def summarise(xml_path):
    root = ET.parse(xml_path).getroot()
    top = root.find("suite")
    res = {"passed": 0, "failed": 0, "skipped": 0, "failures": []}
    if top is None:
        return res
    for path, test in iter_tests(top):
        status, msg = test_status(test)
        if status == "PASS":
            res["passed"] += 1
        elif status == "SKIP" or status == "NOT RUN":
            res["skipped"] += 1
        else:
            res["failed"] += 1
            res["failures"].append((" / ".join(path[1:]), test.get("name", "?"), first_line(msg)))
    res["suite_error"] = first_line(suite_error(root))
    return res


def group_name(xml_path):
    d = os.path.dirname(os.path.abspath(xml_path))
    return os.path.basename(d)


def collect(args):
    if not args:
        args = [RESULTS_ROOT]
    files = []
    for a in args:
        if os.path.isdir(a):
            direct = os.path.join(a, "output.xml")
            if os.path.isfile(direct):
                files.append(direct)
            else:
                files.extend(sorted(glob.glob(os.path.join(a, "*", "output.xml"))))
        elif os.path.isfile(a):
            files.append(a)
        else:
            print(f"summary.py: not found: {a}", file=sys.stderr)
    return files


def rate(p, total):
    return 100.0 * p / total if total else 0.0


def main(argv):
    totals_only = "--totals" in argv
    no_fail = "--no-failures" in argv
    args = [a for a in argv if not a.startswith("--")]
    files = collect(args)
    if not files:
        print("summary.py: no output.xml found", file=sys.stderr)
        return 2

    results = [(group_name(f), f, summarise(f)) for f in files]

    if totals_only:
        for _, _, r in results:
            total = r["passed"] + r["failed"] + r["skipped"]
            print(f"{r['passed']} passed, {r['failed']} failed, {r['skipped']} skipped"
                  f" (total {total}, pass rate {rate(r['passed'], total):.1f}%)")
        return 0

    width = max(len(g) for g, _, _ in results + [("group", None, None)])
    print(f"{'group':<{width}}  {'pass':>5} {'fail':>5} {'skip':>5} {'total':>6} {'rate':>7}")
    P = F = S = 0
    for g, _, r in results:
        total = r["passed"] + r["failed"] + r["skipped"]
        P += r["passed"]
        F += r["failed"]
        S += r["skipped"]
        print(f"{g:<{width}}  {r['passed']:>5} {r['failed']:>5} {r['skipped']:>5} {total:>6}"
              f" {rate(r['passed'], total):>6.1f}%")
    if len(results) > 1:
        T = P + F + S
        print(f"{'TOTAL':<{width}}  {P:>5} {F:>5} {S:>5} {T:>6} {rate(P, T):>6.1f}%")

    if not no_fail:
        for g, f, r in results:
            if not r["failures"]:
                continue
            print(f"\n== {g}: {r['failed']} failing  ({f})")
            if r.get("suite_error"):
                print(f"   [suite] {r['suite_error']}")
            for suite_path, name, msg in r["failures"]:
                print(f" - {name}  [{suite_path}]\n     {msg}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
