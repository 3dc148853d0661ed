#!/usr/bin/env python3
"""summarize.py [--host-skips FILE] FOCUS SKIP JUNIT.xml...

Prints "P passed, F failed, S skipped" over the specs of the JUnit reports
(ginkgo --junit-report) that the run selected (name matches FOCUS and not
SKIP; ginkgo also lists the specs its filters left out, as skipped), then
every failed and every skipped spec with a one-line reason.

--host-skips FILE: lines "REGEXP<TAB>REASON" (run.sh's host-limits list, which
the run added to SKIP): a spec of FOCUS, not of SKIP, that one of them matches
is counted and listed as skipped-for-host, with the reason.
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
    args = sys.argv[1:]
    host_skips = []
    if len(args) >= 2 and args[0] == "--host-skips":
        with open(args[1]) as f:
            for line in f:
                line = line.rstrip("\n")
                if line:
                    regexp, _, reason = line.partition("\t")
                    host_skips.append((re.compile(regexp), reason))
        args = args[2:]
    if len(args) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    focus, skip = re.compile(args[0]), re.compile(args[1]) if args[1] else None
    passed, failed, skipped, notrun, for_host = [], [], [], [], []
    for path in args[2:]:
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
            host = next((reason for regexp, reason in host_skips if regexp.search(name)), None)
            if host is not None and tc.find("failure") is None and tc.find("error") is None:
                for_host.append((name, host))
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
    if host_skips:
        line += f", {len(for_host)} skipped-for-host"
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
    if for_host:
        print("\nSKIPPED-FOR-HOST (run.sh's host-limits list, the same for every runtime):")
        for n, m in sorted(for_host):
            print(f"  {n}\n      {m}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
