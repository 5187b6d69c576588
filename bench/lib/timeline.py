"""Merges one cold start's marks, Starling log and containerd log (a
bench/coldstart.sh TIMELINE=1 KEEP=1 work directory) into one timeline,
each event as milliseconds after the rpull began."""
import datetime
import re
import sys

directory = sys.argv[1]
events = []  # (epoch seconds, source, text)

def epoch(iso):
    iso = iso.replace("Z", "+00:00")
    # containerd writes nanoseconds: Python parses microseconds at most
    iso = re.sub(r"(\.\d{6})\d+", r"\1", iso)
    return datetime.datetime.fromisoformat(iso).timestamp()

for line in open(f"{directory}/marks"):
    first, _, rest = line.strip().partition(" ")
    try:
        events.append((float(first), "marks", rest))
    except ValueError:
        pass

# Starling: `2026-12-02T18:10:37.123Z level label: key=value ... [Module] message`
interesting = re.compile(r"snapshot call|layer mounted|TOC|prefetch|read-ahead|fetched|request|program|Prepare|"
                         r"mounted|committed|background|remote", re.I)
for line in open(f"{directory}/starling.log", errors="replace"):
    match = re.match(r"(\d{4}-\d\d-\d\dT[\d:.]+Z) (\w+) ([^:]+): (.*)\[(\w+)\] (.*)$", line.strip())
    if not match:
        continue
    stamp, _, _, fields, _, message = match.groups()
    if not interesting.search(message):
        continue
    keep = [f for f in fields.split() if re.match(r"(method|key|bytes|range|path|files|seconds|\w+Seconds|requests|purpose|count|layer)=", f)]
    events.append((epoch(stamp), "starling", f"{message} {' '.join(keep)[:160]}".strip()))

for line in open(f"{directory}/containerd.log", errors="replace"):
    match = re.search(r'time="([^"]+)" level=(\w+) msg="([^"]*)"(.*)', line)
    if not match:
        continue
    stamp, _, message, rest = match.groups()
    topic = re.search(r"topic=(\S+)", rest)
    if topic and re.search(r"/(tasks|containers|snapshot)/", topic.group(1)):
        events.append((epoch(stamp), "containerd", f"event {topic.group(1)}"))
    elif re.search(r"shim|runc|starting signal loop|loading plugin", message) and "loading plugin" not in message:
        events.append((epoch(stamp), "containerd", message[:120]))

starts = [t for t, source, text in events if source == "marks" and text.startswith("rpull starts")]
if not starts:
    sys.exit(f"{directory}/marks has no rpull mark")
zero = starts[0]
previous = zero
for t, source, text in sorted(events):
    if t < zero - 0.001:
        continue
    print(f"{1000 * (t - zero):8.1f} ms  (+{1000 * (t - previous):6.1f})  {source:10}  {text}")
    previous = t
