#!/usr/bin/env python3
"""summarize.py FOCUS SKIP JUNIT.xml...

Prints "P passed, F failed, S skipped" over the specs of the JUnit reports
(ginkgo --junit-report) that the run selected (name matches FOCUS and not
SKIP; ginkgo also lists the specs its filters left out, as skipped), then
every failed and every skipped spec with a one-line reason.
"""
import re
import sys
import xml.etree.ElementTree as ET


def one_line(text):
    for line in (text or "").splitlines():
        line = line.strip()
        # ginkgo prefixes the message with "[FAILED]" or "[SKIPPED]"
        line = re.sub(r"^\[(FAILED|SKIPPED|PANICKED|TIMEDOUT|INTERRUPTED)\]\s*", "", line)
        if line:
            return line[:300]
    return "(no message)"


def main():
    if len(sys.argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    focus, skip = re.compile(sys.argv[1]), re.compile(sys.argv[2]) if sys.argv[2] else None
    passed, failed, skipped, notrun = [], [], [], []
    for path in sys.argv[3:]:
        try:
            root = ET.parse(path).getroot()
        except (OSError, ET.ParseError) as e:
            print(f"summarize: {path}: {e} (the pass did not finish: see its log)")
            continue
        for tc in root.iter("testcase"):
            name = tc.get("name", "")
            if name.startswith("[SynchronizedBeforeSuite]") or name.startswith("[SynchronizedAfterSuite]") \
                    or name.startswith("[BeforeSuite]") or name.startswith("[AfterSuite]") \
                    or name.startswith("[ReportAfterSuite]") or name.startswith("[ReportBeforeSuite]"):
                f = tc.find("failure")
                if f is None:
                    f = tc.find("error")
                if f is not None:
                    failed.append((name, one_line(f.get("message") or f.text)))
                continue
            if not focus.search(name) or (skip and skip.search(name)):
                continue
            f = tc.find("failure")
            if f is None:
                f = tc.find("error")
            s = tc.find("skipped")
            if f is not None:
                failed.append((name, one_line(f.get("message") or f.text)))
            elif s is not None or tc.get("status") == "skipped":
                msg = s.get("message") if s is not None else ""
                msg = re.sub(r"^skipped\s*-?\s*", "", msg or "")
                if msg:
                    skipped.append((name, one_line(msg)))
                else:
                    # selected by the filters yet not run: the run was interrupted (timeout) first
                    notrun.append(name)
            else:
                passed.append(name)
    line = f"{len(passed)} passed, {len(failed)} failed, {len(skipped)} skipped"
    if notrun:
        line += f" ({len(notrun)} selected specs not run: the pass was interrupted)"
    print(line)
    if failed:
        print("\nFAILED:")
        for n, m in sorted(failed):
            print(f"  {n}\n      {m}")
    if skipped:
        print("\nSKIPPED:")
        for n, m in sorted(skipped):
            print(f"  {n}\n      {m}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
