"""Writes the exercise version of this repository from the solution's marked regions.

    python tools/make_exercise.py --out ../exercise     # write it (DIR new, or empty apart from .git)
    python tools/make_exercise.py --check ../exercise   # does DIR hold exactly what --out would write?

Inside a function body, the solution marks what students write with whole-line comments:

    # BEGIN SOLUTION: <hint shown to the student>
    # STUB: <a line the student starts from>          (optional, any number)
    ...the solution...
    # END SOLUTION

The exercise version replaces each region, at the region's indentation, with `# TODO: <hint>`, the
stub lines, and `raise NotImplementedError("<file>::<function>: <hint>")`. Every other byte is copied
unchanged, so `git diff exercise solution` shows exactly the regions. Files matching a pattern in
tools/exercise_exclude.txt (hidden tests, this tool) are left out. The output is deterministic (files
in sorted order, no timestamps), which is what lets --check verify a published tree.

Standard library only: instructors can run it before installing anything.
"""

from __future__ import annotations

import argparse
import ast
import fnmatch
import io
import os
import subprocess
import sys
import tokenize
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXCLUDE_LIST = "tools/exercise_exclude.txt"
BEGIN, END, STUB = "# BEGIN SOLUTION", "# END SOLUTION", "# STUB:"
DEFAULT_HINT = "write this part (see the docstring)"
SKIPPED_IN_CHECK = {".git", "__pycache__", ".pytest_cache"}  # never part of a tree's content


class ExerciseError(Exception):
    """A problem in the solution's markers; the message is one line per problem, each with file:line."""


class UsageError(ExerciseError):
    """A problem with the command line (exit code 2)."""


# ----------------------------------------------------------------------------- one file
def _markers(source: str, path: str) -> list[tuple[int, str, str, str]]:
    """The marker comments of a Python file as (line number, kind, text, indentation).

    tokenize, not a text search, so marker-like lines inside strings (in tests) are not markers.
    """
    markers, errors = [], []
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    for token in tokens:
        if token.type != tokenize.COMMENT or not token.string.startswith((BEGIN, END, STUB)):
            continue
        line = token.start[0]
        if token.line.strip() != token.string:
            errors.append(f"{path}:{line}: a solution marker must be a whole-line comment")
            continue
        indent = token.line[:token.start[1]]
        if token.string.startswith(STUB):
            text = token.string[len(STUB):]
            markers.append((line, "stub", text[1:] if text.startswith(" ") else text, indent))
        elif token.string == END:
            markers.append((line, "end", "", indent))
        elif token.string == BEGIN or token.string.startswith(BEGIN + ":"):
            hint = token.string[len(BEGIN) + 1:].strip()
            markers.append((line, "begin", hint or DEFAULT_HINT, indent))
        else:
            errors.append(f"{path}:{line}: malformed marker {token.string!r}; write "
                          f"'{BEGIN}: <hint>' or '{END}'")
    if errors:
        raise ExerciseError("\n".join(errors))
    return markers


def _functions(tree: ast.Module, lines: list[str]) -> list[tuple[int, int, int, str]]:
    """Every function as (first body line, last line, nesting depth, name students look for).

    The name is the top-level function or Class.method; a nested function reports its outer one.
    The last line includes comments indented under the function after its last statement (where an
    END marker often sits)."""
    found = []

    def last_line(node) -> int:
        last = node.end_lineno
        for number in range(node.end_lineno + 1, len(lines) + 1):
            text = lines[number - 1]
            if not text.strip():
                continue
            if text.lstrip().startswith("#") and len(text) - len(text.lstrip()) > node.col_offset:
                last = number
                continue
            break
        return last

    def visit(node, prefix: str, outer: str | None, depth: int):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.", outer, depth)
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = outer or f"{prefix}{child.name}"
                body = child.body
                has_docstring = (isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                                 and isinstance(body[0].value.value, str))
                first = body[0].end_lineno + 1 if has_docstring else child.lineno + 1
                found.append((first, last_line(child), depth, name))
                visit(child, prefix, name, depth + 1)
            else:
                visit(child, prefix, outer, depth)

    visit(tree, "", None, 0)
    return found


def _enclosing(functions, line: int):
    """The innermost function whose body (after its docstring) contains `line`, or None."""
    inside = [f for f in functions if f[0] <= line <= f[1]]
    return max(inside, key=lambda f: f[2]) if inside else None


def _string_literal(text: str) -> str:
    return f'"{text}"' if '"' not in text and "\\" not in text else repr(text)


def make_exercise_source(source: str, path: str) -> tuple[str, int]:
    """The exercise version of one Python file's text, and how many regions it had.

    Raises:
        ExerciseError: naming file:line for a nested, unclosed or stray marker, a marker outside a
            function body, a solution or an exercise version that does not parse.
    """
    try:  # every Python file is parsed, with or without regions: the output must parse too
        tree = ast.parse(source, path)
    except SyntaxError as err:
        raise ExerciseError(f"{path}:{err.lineno}: the solution does not parse ({err.msg})") from None
    markers = _markers(source, path)
    if not markers:
        return source, 0
    lines = source.splitlines(keepends=True)
    functions = _functions(tree, lines)
    output, errors, copied_up_to, regions = [], [], 0, 0
    starts = []  # (exercise line, solution line) where each replacement begins
    region = None  # (begin line, hint, indentation, function, stubs) while inside one
    for line, kind, text, indent in markers:
        if kind == "begin":
            if region:
                errors.append(f"{path}:{line}: nested {BEGIN} (the region opened at line {region[0]} "
                              f"is not closed)")
                continue
            function = _enclosing(functions, line)
            if function is None:
                errors.append(f"{path}:{line}: {BEGIN} outside a function body; regions go inside "
                              f"functions, after the docstring")
                continue
            region = (line, text, indent, function, [])
        elif kind == "stub":
            if not region:
                errors.append(f"{path}:{line}: stray {STUB} outside a solution region")
                continue
            region[4].append(indent + text)
        else:
            if not region:
                errors.append(f"{path}:{line}: stray {END} without a {BEGIN}")
                continue
            begin, hint, region_indent, function, stubs = region
            if _enclosing(functions, line) != function:
                errors.append(f"{path}:{line}: {END} is not in the function its region opened in "
                              f"(line {begin})")
            newline = lines[begin - 1][len(lines[begin - 1].rstrip("\r\n")):] or "\n"
            message = f"{path}::{function[3]}: {hint}"
            output += lines[copied_up_to:begin - 1]
            starts.append((len(output) + 1, begin))
            output.append(f"{region_indent}# TODO: {hint}{newline}")
            output += [stub + newline for stub in stubs]
            output.append(f"{region_indent}raise NotImplementedError({_string_literal(message)}){newline}")
            copied_up_to, region, regions = line, None, regions + 1
    if region:
        errors.append(f"{path}:{region[0]}: {BEGIN} is never closed by {END}")
    if errors:
        raise ExerciseError("\n".join(errors))
    exercise = "".join(output + lines[copied_up_to:])
    try:
        compile(exercise, path, "exec")
    except SyntaxError as err:  # name the region (in the solution's numbering) just before the error
        begin = max([b for e, b in starts if e <= (err.lineno or 0)] or [starts[0][1]])
        raise ExerciseError(f"{path}:{begin}: the exercise version of this region does not parse "
                            f"({err.msg} at its line {err.lineno}); end the region with whole statements") from None
    return exercise, regions


# ----------------------------------------------------------------------------- the whole tree
def repository_files(root: Path) -> list[str]:
    """Tracked and untracked-but-not-ignored files, as git sees the working tree (sorted)."""
    try:
        listing = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--cached", "--others",
                                  "--exclude-standard"], capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        raise UsageError(f"{root} is not a git checkout (git ls-files failed); run this from a "
                            f"clone of the solution repository") from None
    names = {name for name in listing.decode().split("\0") if name}
    return sorted(n for n in names if (root / n).is_file() and not (root / n).is_symlink())


def exclude_patterns(root: Path) -> list[str]:
    """Patterns from the exclude list: one per line, '#' starts a comment, 'dir/' means everything in it."""
    path = root / EXCLUDE_LIST
    if not path.is_file():
        return []
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def is_excluded(path: str, patterns: list[str]) -> bool:
    return any(path.startswith(p) if p.endswith("/") else fnmatch.fnmatchcase(path, p) for p in patterns)


def build_exercise(root: Path) -> tuple[dict[str, tuple[bytes, bool]], dict[str, int], list[str]]:
    """The exercise tree in memory: {path: (content, executable)}, regions per file, excluded paths.

    Every marker problem in every file is collected before raising, so one run lists them all.
    """
    patterns = exclude_patterns(root)
    files, regions, excluded, errors = {}, {}, [], []
    for path in repository_files(root):
        if is_excluded(path, patterns):
            excluded.append(path)
            continue
        data = (root / path).read_bytes()
        if path.endswith(".py"):
            try:
                text, count = make_exercise_source(data.decode("utf-8"), path)
            except ExerciseError as err:
                errors.append(str(err))
                continue
            if count:
                data, regions[path] = text.encode("utf-8"), count
        files[path] = (data, os.access(root / path, os.X_OK))
    if errors:
        raise ExerciseError("\n".join(errors))
    return files, regions, excluded


def write_tree(files: dict[str, tuple[bytes, bool]], out: Path) -> None:
    """Writes the tree into `out`, which must be new or empty apart from .git (nothing is overwritten)."""
    if out.exists():
        if not out.is_dir():
            raise UsageError(f"--out {out} is a file; choose a new folder")
        leftovers = sorted(p.name for p in out.iterdir() if p.name != ".git")
        if leftovers:
            raise UsageError(f"--out {out} is not empty ({leftovers[0]} ...); choose a new folder, or "
                                f"empty it first (in an exercise checkout: git rm -rq . && git clean -fdq)")
    for path, (data, executable) in files.items():
        target = out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        if executable:
            target.chmod(target.stat().st_mode | 0o111)


def check_tree(files: dict[str, tuple[bytes, bool]], tree: Path) -> list[str]:
    """Differences between `tree` and the expected files, one line each (empty: identical)."""
    if not tree.is_dir():
        raise UsageError(f"--check {tree}: no such folder; give the exercise tree's path")
    found = set()
    for folder, subfolders, names in os.walk(tree):
        subfolders[:] = sorted(s for s in subfolders if s not in SKIPPED_IN_CHECK)
        found.update(Path(folder, name).relative_to(tree).as_posix() for name in names)
    problems = []
    for path in sorted(found | set(files)):
        if path not in files:
            problems.append(f"{path}: not part of the exercise version (left out or removed)")
        elif path not in found:
            problems.append(f"{path}: missing")
        elif (tree / path).read_bytes() != files[path][0]:
            problems.append(f"{path}: differs from the generated version")
        elif os.access(tree / path, os.X_OK) != files[path][1]:
            problems.append(f"{path}: executable bit differs")
    return problems


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"usage error: {message} (see --help)\n")


def main(argv: list[str] | None = None) -> int:
    parser = _OneLineParser(description=__doc__.split("\n\n")[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--out", type=Path, metavar="DIR", help="write the exercise version into DIR")
    action.add_argument("--check", type=Path, metavar="DIR", help="verify that DIR is the exercise version")
    parser.add_argument("--source", type=Path, default=REPO, help="the solution checkout (default: this one)")
    args = parser.parse_args(argv)
    try:
        files, regions, excluded = build_exercise(args.source)
        if args.check:
            problems = check_tree(files, args.check)
            for problem in problems:
                print(problem)
            if problems:
                print(f"{args.check} is not the exercise version of {args.source}: {len(problems)} "
                      f"file(s) differ; regenerate it with --out", file=sys.stderr)
                return 1
            print(f"{args.check} matches the exercise version ({len(files)} files)")
            return 0
        write_tree(files, args.out)
    except ExerciseError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2 if isinstance(err, UsageError) else 1
    print(f"wrote {len(files)} files to {args.out}: {sum(regions.values())} solution regions in "
          f"{len(regions)} files replaced by stubs; left out {len(excluded)}: {', '.join(excluded) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
