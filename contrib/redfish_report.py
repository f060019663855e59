#!/usr/bin/env python3
"""Reads the report a DMTF Redfish validator wrote and prints its findings.

usage: redfish_report.py MODE REPORT_DIR
  MODE: service | interop | protocol

Prints one line per FAIL and WARN finding, then one summary line
  MODE: PASS=n WARN=n FAIL=n NOT_TESTED=n report=PATH
and exits 0 when the report holds no FAIL, 1 when it holds one, 2 when no
report was found (the validator stopped before writing one).

Where the counts come from:
- service / interop (validators 3.x): the HTML report. Each result is a
  table cell of class res-pass, res-warn, res-fail or res-skip; the
  message is the row's text; the resource is the last `resource-uri`
  element before it. The tools' own exit code is 1 exactly when the FAIL
  count is not 0.
- protocol (1.3.x): the TSV report, one assertion result a line with the
  columns Assertion, Method, Status code, URI, Result, Message,
  Requirement, where Result is PASS, WARN, FAIL or NOT_TESTED. NOT_TESTED
  means "not applicable / could not be exercised" and is no failure.
"""

import csv
import glob
import os
import sys
from html.parser import HTMLParser

RESULTS = ("PASS", "WARN", "FAIL", "NOT_TESTED")


class _Html(HTMLParser):
    """Collects (result, uri, row text) for every result cell."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.rows = []
        self._uri = ""
        self._in_uri = False
        self._row = None
        self._result = None
        self._depth = 0

    def handle_starttag(self, tag, attrs):
        cls = dict(attrs).get("class") or ""
        if "resource-uri" in cls.split():
            self._in_uri = True
            self._uri = ""
        if tag == "tr":
            self._row = []
            self._result = None
        if tag == "td" and self._row is not None:
            for c in cls.split():
                if c.startswith("res-"):
                    self._result = c[4:].upper()
            self._row.append("")

    def handle_endtag(self, tag):
        if self._in_uri and tag in ("div", "span", "a", "td", "h2", "h3", "h4"):
            self._in_uri = False
        if tag == "tr" and self._row is not None:
            if self._result:
                result = "NOT_TESTED" if self._result == "SKIP" else self._result
                cells = [" ".join(c.split()) for c in self._row]
                self.rows.append((result, self._uri.strip(), cells))
            self._row = None

    def handle_data(self, data):
        if self._in_uri:
            self._uri += data
        if self._row:
            self._row[-1] += data + " "


def html_findings(path):
    p = _Html()
    with open(path, encoding="utf-8") as f:
        p.feed(f.read())
    counts = dict.fromkeys(RESULTS, 0)
    findings = []
    for result, uri, cells in p.rows:
        counts[result] = counts.get(result, 0) + 1
        if result in ("FAIL", "WARN"):
            # cells: property, value and message, result word
            text = " ".join(c for c in cells[:-1] if c)
            findings.append("%s %s %s" % (result, uri or "-", text))
    return counts, findings


def tsv_findings(path):
    counts = dict.fromkeys(RESULTS, 0)
    findings = []
    with open(path, encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            result = row.get("Result", "")
            counts[result] = counts.get(result, 0) + 1
            if result in ("FAIL", "WARN"):
                findings.append(
                    "%s %s %s %s %s: %s"
                    % (result, row["Assertion"], row["Method"] or "-",
                       row["URI"] or "-", row["Status code"] or "-", row["Message"])
                )
    return counts, findings


def newest(pattern):
    files = glob.glob(pattern, recursive=True)
    return max(files, key=os.path.getmtime) if files else None


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("service", "interop", "protocol"):
        sys.exit(__doc__)
    mode, report_dir = sys.argv[1], sys.argv[2]
    if mode == "protocol":
        report = newest(os.path.join(report_dir, "RedfishProtocolValidationReport_*.tsv"))
        reader = tsv_findings
    else:
        name = "RedfishServiceValidatorReport_" if mode == "service" else "RedfishInteropValidatorReport_"
        report = newest(os.path.join(report_dir, "**", name + "*.html"))
        reader = html_findings
    if report is None:
        print("%s: no report in %s" % (mode, report_dir))
        sys.exit(2)
    counts, findings = reader(report)
    for line in findings:
        print(line)
    print(
        "%s: %s report=%s"
        % (mode, " ".join("%s=%d" % (k, counts.get(k, 0)) for k in RESULTS), report)
    )
    sys.exit(1 if counts.get("FAIL", 0) else 0)


if __name__ == "__main__":
    main()
