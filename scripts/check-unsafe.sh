#!/usr/bin/env bash
# Lists every `unsafe` in the workspace's Rust code (crates, tests, benches, fuzz
# targets) and fails when one is outside the small wrapper files named below, or when
# an `unsafe` block, impl or fn lacks its justification: a `// SAFETY:` comment on the
# lines just above (or on the same line) for a block or impl, a `# Safety` doc section
# for an `unsafe fn`.
#
# Comments, string and char literals are skipped (a lexer, not grep), so prose such as
# "unsafe path" or a CSP test for 'unsafe-inline' does not count.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 - "$@" <<'EOF'
import pathlib, re, sys

# The only files allowed to contain `unsafe`, each a handful of lines that wrap one
# system call behind a safe function.
ALLOWED = {
    "spawner/src/sys.rs": "the privileged helper's syscall wrappers (fork, close_range, _exit, SIGPIPE)",
    "uiserver-stub/src/sys.rs": "the UI server's fork that detaches a scheduler",
    "tests/src/slapd.rs": "test support: pre_exec(PR_SET_PDEATHSIG) so slapd dies with the test",
}
SKIP_DIRS = {"target", ".git", "node_modules"}


def code_only(text):
    """The text with comments and string/char literals blanked (newlines kept)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i)); i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j): depth += 1; j += 2
                elif text.startswith("*/", j): depth -= 1; j += 2
                else: j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j])); i = j
        elif (m := re.match(r'b?r(#*)"', text[i:i + 260])):
            end = '"' + m.group(1)
            j = text.find(end, i + m.end())
            j = n if j < 0 else j + len(end)
            out.append(re.sub(r"[^\n]", " ", text[i:j])); i = j
        elif c == '"' or (c == "b" and text.startswith('b"', i)):
            j = i + (2 if c == "b" else 1)
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j])); i = j
        elif c == "'" and (m := re.match(r"'(\\.[^']*|[^'\\\n])'", text[i:i + 12])):
            out.append(" " * m.end()); i += m.end()
        else:
            out.append(c); i += 1
    return "".join(out)


def justified(lines, idx, kind):
    """A SAFETY comment on this line or in the comment lines just above it."""
    if kind == "fn":
        pat = re.compile(r"^\s*///.*#\s*Safety")
    else:
        pat = re.compile(r"//\s*SAFETY:")
    if kind != "fn" and pat.search(lines[idx]):
        return True
    j = idx - 1
    while j >= 0 and j >= idx - 12:
        s = lines[j].strip()
        if pat.search(lines[j]):
            return True
        if s.startswith("//") or s.startswith("#[") or (kind != "fn" and s == ""):
            j -= 1
            continue
        # A statement that opens the block on the line above (`let x =`, `match`, `if`).
        if kind == "block" and j == idx - 1 and not s.endswith(";") and not s.endswith("}"):
            j -= 1
            continue
        break
    return False


rows, bad = [], []
for path in sorted(pathlib.Path(".").rglob("*.rs")):
    if SKIP_DIRS & set(path.parts):
        continue
    rel = path.as_posix()
    text = path.read_text(encoding="utf-8", errors="replace")
    code = code_only(text)
    lines, code_lines = text.split("\n"), code.split("\n")
    for idx, line in enumerate(code_lines):
        for m in re.finditer(r"\bunsafe\b", line):
            rest = line[m.end():].lstrip()
            kind = ("fn" if re.match(r"(extern\s+\"[^\"]*\"\s+)?fn\b", rest)
                    else "impl" if rest.startswith("impl") else "block")
            problems = []
            if rel not in ALLOWED:
                problems.append("outside the allowed wrapper files")
            if not justified(lines, idx, kind):
                problems.append("no `# Safety` doc" if kind == "fn" else "no `// SAFETY:` comment")
            rows.append((rel, idx + 1, kind, problems))
            if problems:
                bad.append((rel, idx + 1, kind, problems))

print(f"check-unsafe: {len(rows)} `unsafe` in the workspace")
for rel, line, kind, problems in rows:
    mark = "FAIL" if problems else "ok  "
    why = "; ".join(problems) if problems else ALLOWED.get(rel, "")
    print(f"  {mark} {rel}:{line} unsafe {kind} — {why}")
if bad:
    print(f"check-unsafe: {len(bad)} not allowed: move each into a wrapper in one of "
          f"{', '.join(ALLOWED)} (with a `// SAFETY:` line) or use a safe crate API",
          file=sys.stderr)
    sys.exit(1)
EOF
