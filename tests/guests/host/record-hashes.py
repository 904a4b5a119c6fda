#!/usr/bin/env python3
"""Records the sweep hashes of a guest kernel on this machine's CPU (real hardware) and
writes them between the BEGIN HASHES / END HASHES markers of tests/guests/NAME.c.

    tests/guests/host/record-hashes.py alu

Check the result under QEMU afterwards (the kernel must print only "ok" lines there)."""
import os, re, subprocess, sys

here = os.path.dirname(os.path.abspath(__file__))
name = sys.argv[1]
out = subprocess.run([os.path.join(here, "run-native.sh"), name, "hashes"],
                     check=True, capture_output=True, text=True).stdout
rows = [l.split("\t") for l in out.splitlines() if l.startswith("H\t")]
names = [r[1] for r in rows]
dups = {n for n in names if names.count(n) > 1}
if dups:
    sys.exit(f"duplicate sweep names: {sorted(dups)}")
body = "const struct sweep_hash sweep_hashes[] = {\n"
body += "".join(f'    {{ "{n}", {h} }},\n' for _, n, h in rows)
body += "};\nconst unsigned sweep_nhashes = N(sweep_hashes);\n"
path = os.path.join(os.path.dirname(here), name + ".c")
src = open(path).read()
new, n = re.subn(r"(/\* BEGIN HASHES[^\n]*\n).*?(/\* END HASHES \*/)",
                 lambda m: m.group(1) + body + m.group(2), src, flags=re.S)
if n != 1:
    sys.exit(f"{path}: no BEGIN HASHES / END HASHES block")
open(path, "w").write(new)
print(f"{path}: {len(rows)} hashes")
