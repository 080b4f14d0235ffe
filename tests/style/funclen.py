#!/usr/bin/env python3
"""funclen.py - the house rule that no function is over 150 lines
(STYLE.md), outside force-inlined kernels (KERN_AI / always_inline).

Usage: funclen.py SRC_DIR [LIMIT]. Scans every .c file under apps/, mpc/,
net/, kernels/ and tests/ of SRC_DIR; prints each function over LIMIT lines
(from its header's first line to its closing brace) as file:line: name
(N lines) and exits 1 if there is one. A C scanner, not a parser: comments,
strings and character literals are blanked first, then a '{' at file scope
whose text since the last file-scope ';' or '}' has a parameter list (and is
not a struct, union, enum or initialiser) opens a function."""
import os
import re
import sys

LIMIT_DEFAULT = 150
DIRS = ("apps", "mpc", "net", "kernels", "tests")


def blank(text):
    """Comments, strings and character literals replaced by spaces (newlines
    kept, so line numbers stay)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(c + re.sub(r"[^\n]", " ", text[i + 1:j - 1]) + c)
            i = j
        elif c == "#" and (i == 0 or text[i - 1] == "\n"):
            # A preprocessor line (and its continuations): not code here.
            j = i
            while True:
                k = text.find("\n", j)
                if k < 0:
                    k = n
                    break
                if text[k - 1] != "\\":
                    break
                j = k + 1
            out.append(re.sub(r"[^\n]", " ", text[i:k]))
            i = k
        else:
            out.append(c)
            i += 1
    return "".join(out)


def functions(path):
    """(first line, last line, header) of each function defined in path."""
    text = blank(open(path, encoding="utf-8", errors="replace").read())
    depth, line, since, since_line, start, header = 0, 1, "", 1, None, ""
    found = []
    for c in text:
        if depth == 0:
            if c == "{":
                h = " ".join(since.split())
                is_fn = ("(" in h and ")" in h and
                         not re.match(r"(typedef\s+)?(struct|union|enum)\b", h) and
                         "=" not in h.split("(")[0])
                if is_fn:
                    start, header = since_line, h
                depth = 1
            elif c == ";" or c == "}":
                since = ""
            else:
                if not since.strip() and not c.isspace():
                    since_line = line
                since += c
        else:
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    if start is not None:
                        found.append((start, line, header))
                    start, since = None, ""
        if c == "\n":
            line += 1
    return found


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "."
    limit = int(sys.argv[2]) if len(sys.argv) > 2 else LIMIT_DEFAULT
    bad = 0
    for d in DIRS:
        for root, _, files in os.walk(os.path.join(src, d)):
            for f in sorted(files):
                if not f.endswith(".c"):
                    continue
                path = os.path.join(root, f)
                for first, last, header in functions(path):
                    if "KERN_AI" in header or "always_inline" in header:
                        continue
                    n = last - first + 1
                    if n > limit:
                        name = re.findall(r"(\w+)\s*\(", header)
                        print("%s:%d: %s (%d lines, limit %d)" % (
                            os.path.relpath(path, src), first,
                            name[-1] if name else header[:40], n, limit))
                        bad += 1
    if bad:
        print("funclen: %d function(s) over %d lines; split them (STYLE.md)" % (bad, limit))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
