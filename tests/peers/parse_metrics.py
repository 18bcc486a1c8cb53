"""Parses Prometheus text exposition read on stdin with prometheus_client's parser.

The parser is lax (a sample with no declared family becomes an untyped family of its
own), so this also refuses untyped families, a family declared twice and a series
repeated. Prints the number of families; exits non-zero, with the reason on stderr,
on any error.
"""

import sys

from prometheus_client.parser import text_string_to_metric_families


def main() -> int:
    text = sys.stdin.read()
    try:
        families = list(text_string_to_metric_families(text))
    except Exception as error:  # the parser raises ValueError and friends
        print(f"parse error: {error!r}", file=sys.stderr)
        return 1
    names = set()
    series = set()
    for family in families:
        # The parser names an undeclared sample's family "untyped" or, in newer
        # versions, "unknown".
        if family.type in ("untyped", "unknown"):
            samples = ", ".join(sample.name for sample in family.samples)
            print(f"sample without a declared family: {samples}", file=sys.stderr)
            return 1
        if family.name in names:
            print(f"family declared twice: {family.name}", file=sys.stderr)
            return 1
        names.add(family.name)
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            if key in series:
                print(f"series repeated: {key}", file=sys.stderr)
                return 1
            series.add(key)
    print(len(families))
    return 0


if __name__ == "__main__":
    sys.exit(main())
