"""Writes the exercise version of this repository from the solution's marked regions.

    python tools/make_exercise.py --out ../exercise     # write it (DIR new, or empty but for .git)
    python tools/make_exercise.py --check ../exercise   # does DIR hold just what --out would write?
    python tools/make_exercise.py --out DIR --solved MLP CNN   # an answer key for some stages only
    python tools/make_exercise.py --stages              # the regions of each stage

Inside a function body, the solution marks what students write with whole-line comments:

    # BEGIN SOLUTION [stage]: <hint shown to the student>
    # STUB: <a line the student starts from>          (optional, any number)
    ...the solution...
    # END SOLUTION

The exercise version replaces each region, at the region's indentation, with
`# TODO [stage]: <hint>`, the stub lines, and `raise NotWrittenError("<file>::<function>: <hint>")`
(as `ruff format` writes it at ruff.toml's line length); a file with stubs gains the import of
NotWrittenError (plumbing/todo.py: a NotImplementedError only stubs raise), where ruff sorts it.
In Markdown files, `<!-- BEGIN SOLUTION ONLY -->` ... `<!-- END SOLUTION ONLY -->` is left out,
and the lines between `<!-- BEGIN EXERCISE ONLY` and `END EXERCISE ONLY -->` are shown (the
solution keeps them hidden in a comment). ruff.toml gains per-file ignores for the files holding
stubs (see exercise_ruff_config), so the exercise passes its own `ruff check .` and
`ruff format --check .`. Every other byte is copied unchanged, so `git diff exercise main` shows
exactly that (besides the files left out). Files git does not track, and those matching
tools/exercise_exclude.txt (hidden tests, the instructor guide, this tool), are left out. The
output is deterministic, which lets --check verify a published tree (what the tree's .gitignore
ignores, such as runs/ and data/, is not compared; each differing file is shown as a short diff).

Standard library only (plumbing/errors.py is too): instructors run it before installing anything.
"""

from __future__ import annotations

import ast
import difflib
import fnmatch
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import tokenize
import tomllib
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from plumbing.errors import DataError, OneLineParser, UsageError, report  # noqa: E402

EXCLUDE_LIST = "tools/exercise_exclude.txt"
BEGIN = re.compile(r"# BEGIN SOLUTION \[([^\]]+)\](?:: (.*))?$")
END, STUB = "# END SOLUTION", "# STUB:"
MARKDOWN = {
    "<!-- BEGIN SOLUTION ONLY -->": "solution",
    "<!-- END SOLUTION ONLY -->": "end solution",
    "<!-- BEGIN EXERCISE ONLY": "exercise",
    "END EXERCISE ONLY -->": "end exercise",
}
DEFAULT_HINT = "write this part (see the docstring)"
STUB_MODULE, STUB_ERROR = (
    "plumbing.todo",
    "NotWrittenError",
)  # what a stub raises (NotImplementedError)
STUB_IMPORT = f"from {STUB_MODULE} import {STUB_ERROR}"
RUFF_CONFIG, RUFF_LINE_LENGTH = "ruff.toml", 88  # ruff's own default, when ruff.toml sets none
RUFF_SRC = [".", "src"]  # ruff's own default source folders (first-party modules)
STUB_IGNORES = (
    "F401",
    "F841",
    "B007",
)  # unused import, variable, loop variable: see exercise_ruff_config
STUB_IGNORES_NOTE = """\
# The exercise version only: until you write a stage, names its solution uses are unused
# (imports, variables and loop variables of the code around a TODO), so the files with TODOs skip
# those three checks (and `ruff check --fix` keeps their imports). Delete these lines once every
# stage is written."""
DIFF_LINES = 20  # --check shows at most this many diff lines per file


class ExerciseError(DataError):
    """A problem in the solution's markers; the message: a line per problem, with its file:line."""


class Region(NamedTuple):
    path: str
    line: int  # of the BEGIN marker
    stage: str
    function: str  # file::function, as the stub's error names it


# ----------------------------------------------------------------------------- one Python file
def _markers(source: str, path: str) -> list[tuple[int, str, str, str, str]]:
    """The marker comments of a Python file as (line, kind, text, indentation, stage).

    tokenize, not a text search, so marker-like lines inside strings (in tests) are not markers.
    """
    markers, errors = [], []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type != tokenize.COMMENT or not token.string.startswith(
            ("# BEGIN SOLUTION", END, STUB)
        ):
            continue
        line = token.start[0]
        if token.line.strip() != token.string:
            errors.append(f"{path}:{line}: a solution marker must be a whole-line comment")
            continue
        indent = token.line[: token.start[1]]
        if token.string.startswith(STUB):
            text = token.string[len(STUB) :]
            markers.append((line, "stub", text[1:] if text.startswith(" ") else text, indent, ""))
        elif token.string == END:
            markers.append((line, "end", "", indent, ""))
        elif match := BEGIN.match(token.string):
            hint = (match.group(2) or "").strip() or DEFAULT_HINT
            markers.append((line, "begin", hint, indent, match.group(1)))
        else:
            errors.append(
                f"{path}:{line}: malformed marker {token.string!r}; write "
                f"'# BEGIN SOLUTION [stage]: <hint>' or '{END}'"
            )
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
                has_docstring = (
                    isinstance(body[0], ast.Expr)
                    and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)
                )
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


def _raise_lines(indent: str, where: str, hint: str, width: int | None) -> list[str]:
    """`raise NotWrittenError("<where>: <hint>")` as `ruff format` writes it in lines of at most
    `width` characters: one line; else the message on a line of its own inside the parentheses;
    else the message split at spaces, a piece a line (Python joins adjacent strings into one)."""
    opening, message = f"{indent}raise {STUB_ERROR}(", f"{where}: {hint}"
    one_line = opening + _string_literal(message) + ")"
    if width is None or len(one_line) <= width:
        return [one_line]
    inner = indent + " " * 4
    pieces, piece = [], ""
    for word in re.findall(r"\S+\s*", message):
        if piece and len(inner + _string_literal(piece + word)) > width:
            pieces.append(piece)
            piece = ""
        piece += word
    pieces.append(piece)
    return [opening, *(inner + _string_literal(piece) for piece in pieces), indent + ")"]


def _pair_markers(markers, functions, path: str) -> tuple[list[tuple], list[str]]:
    """The regions (begin line, end line, hint, indentation, function, stubs, stage); the errors."""
    regions, errors, region = [], [], None  # region: the one being read
    for line, kind, text, indent, stage in markers:
        if kind == "begin":
            if region:
                errors.append(
                    f"{path}:{line}: nested # BEGIN SOLUTION (the region opened at line "
                    f"{region[0]} is not closed)"
                )
                continue
            function = _enclosing(functions, line)
            if function is None:
                errors.append(
                    f"{path}:{line}: # BEGIN SOLUTION outside a function body; regions go inside "
                    f"functions, after the docstring"
                )
                continue
            region = (line, text, indent, function, [], stage)
        elif kind == "stub":
            if not region:
                errors.append(f"{path}:{line}: stray {STUB} outside a solution region")
                continue
            region[4].append(indent + text)
        elif not region:
            errors.append(f"{path}:{line}: stray {END} without a # BEGIN SOLUTION")
        else:
            if _enclosing(functions, line) != region[3]:
                errors.append(
                    f"{path}:{line}: {END} is not in the function its region opened in "
                    f"(line {region[0]})"
                )
            regions.append((region[0], line, *region[1:]))
            region = None
    if region:
        errors.append(f"{path}:{region[0]}: # BEGIN SOLUTION is never closed by {END}")
    return regions, errors


def make_exercise_source(
    source: str,
    path: str,
    solved: frozenset[str] = frozenset(),
    line_length: int | None = None,
    first_party: frozenset[str] = frozenset(),
) -> tuple[str, list[Region]]:
    """The exercise version of one Python file's text, and its regions (those of `solved` stages
    are kept).

    The `raise` lines are wrapped to fit `line_length` (the linter's limit, from ruff.toml; None:
    one line). A file with stubs imports their error (STUB_IMPORT), placed where ruff's import
    sorting puts it; `first_party` names the modules it sorts as the repository's own.

    Raises:
        ExerciseError: naming file:line for a nested, unclosed or stray marker, a marker outside a
            function body, a solution or an exercise version that does not parse.
    """
    try:  # every Python file is parsed, with or without regions: the output must parse too
        tree = ast.parse(source, path)
    except SyntaxError as err:
        message = f"{path}:{err.lineno}: the solution does not parse ({err.msg})"
        raise ExerciseError(message) from None
    markers = _markers(source, path)
    if not markers:
        return source, []
    lines = source.splitlines(keepends=True)
    regions, errors = _pair_markers(markers, _functions(tree, lines), path)
    if errors:
        raise ExerciseError("\n".join(errors))
    exercise, starts = _replace_regions(lines, regions, solved, path, line_length)
    try:
        compile(exercise, path, "exec")
    except SyntaxError as err:  # name the region (in the solution's numbering) just before it
        begin = max([b for e, b in starts if e <= (err.lineno or 0)] or [starts[0][1]])
        raise ExerciseError(
            f"{path}:{begin}: the exercise version of this region does not parse "
            f"({err.msg} at its line {err.lineno}); end the region with whole statements"
        ) from None
    if starts:  # some stubs: they raise STUB_ERROR
        exercise = _with_stub_import(exercise, tree, first_party)
    return exercise, [
        Region(path, begin, stage, f"{path}::{function[3]}")
        for begin, _, _, _, function, _, stage in regions
    ]


def _replace_regions(lines, regions, solved, path, line_length) -> tuple[str, list[tuple]]:
    """The text with each region of a stage not `solved` replaced by its TODO, stubs and raise; and
    (exercise line, solution line) where each replacement starts."""
    output, copied_up_to, starts = [], 0, []
    for begin, end, hint, indent, function, stubs, stage in regions:
        if stage in solved:
            continue
        newline = lines[begin - 1][len(lines[begin - 1].rstrip("\r\n")) :] or "\n"
        output += lines[copied_up_to : begin - 1]
        starts.append((len(output) + 1, begin))
        output.append(f"{indent}# TODO [{stage}]: {hint}{newline}")
        output += [stub + newline for stub in stubs]
        raise_lines = _raise_lines(indent, f"{path}::{function[3]}", hint, line_length)
        output += [line + newline for line in raise_lines]
        copied_up_to = end
    return "".join(output + lines[copied_up_to:]), starts


def _import_section(node: ast.Import | ast.ImportFrom, first_party: frozenset[str]) -> int:
    """The section ruff's import sorting puts an import in: 0 __future__, 1 the standard library,
    2 third-party, 3 first-party (the repository's own), 4 relative."""
    if isinstance(node, ast.ImportFrom) and node.level:
        return 4
    module = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
    top = module.split(".")[0]
    if top == "__future__":
        return 0
    if top in sys.stdlib_module_names:
        return 1
    return 3 if top in first_party else 2


def _with_stub_import(exercise: str, tree: ast.Module, first_party: frozenset[str]) -> str:
    """The exercise with STUB_IMPORT added to the imports at the top of the file, where ruff's
    import sorting wants it: among the first-party imports (`import x` lines first, then `from`
    lines by module name), or as a section of its own after the others.

    The lines of the top-level imports are the solution's (`tree`): regions are in functions."""
    lines = exercise.splitlines(keepends=True)
    newline = lines[0][len(lines[0].rstrip("\r\n")) :] or "\n"
    body = tree.body
    has_docstring = bool(body) and isinstance(body[0], ast.Expr)
    has_docstring = has_docstring and isinstance(body[0].value, ast.Constant)
    imports = []
    for node in body[1:] if has_docstring else body:
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            break
        imports.append(node)
    line = STUB_IMPORT + newline
    for node in imports:
        section = _import_section(node, first_party)
        is_from = isinstance(node, ast.ImportFrom)
        if section > 3 or (section == 3 and is_from and node.module.lower() > STUB_MODULE):
            after = [] if section == 3 else [newline]
            return "".join(lines[: node.lineno - 1] + [line, *after] + lines[node.lineno - 1 :])
    if imports:  # after the last import: in its section if first-party, else a section of its own
        last = imports[-1].end_lineno
        before = [] if _import_section(imports[-1], first_party) == 3 else [newline]
        return "".join(lines[:last] + before + [line] + lines[last:])
    top = body[0].end_lineno if has_docstring else 0
    around = [newline, line] if has_docstring else [line, newline, newline]
    return "".join(lines[:top] + around + lines[top:])


# ----------------------------------------------------------------------------- one Markdown file
def make_exercise_markdown(text: str, path: str) -> str:
    """The exercise version of a Markdown file: solution-only blocks out, exercise-only ones in."""
    output, errors, inside = [], [], None  # inside: (kind, line) of the open block
    for number, line in enumerate(text.splitlines(keepends=True), start=1):
        kind = MARKDOWN.get(line.strip())
        if kind in ("solution", "exercise"):
            if inside:
                errors.append(
                    f"{path}:{number}: a block opened inside the one opened at line {inside[1]}"
                )
            inside = (kind, number)
        elif kind in ("end solution", "end exercise"):
            if not inside or kind != "end " + inside[0]:
                errors.append(f"{path}:{number}: {line.strip()} closes no block opened before it")
            inside = None
        elif inside is None or inside[0] == "exercise":
            output.append(line)
    if inside:
        errors.append(f"{path}:{inside[1]}: this block is never closed")
    if errors:
        raise ExerciseError("\n".join(errors))
    return "".join(output)


# ----------------------------------------------------------------------------- the whole tree
def repository_files(root: Path) -> list[str]:
    """The files git tracks (sorted), read from the working tree."""
    try:
        listing = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-z", "--cached"], capture_output=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        raise UsageError(
            f"{root} is not a git checkout (git ls-files failed); run this from a "
            f"clone of the solution repository"
        ) from None
    names = {name for name in listing.decode().split("\0") if name}
    return sorted(n for n in names if (root / n).is_file() and not (root / n).is_symlink())


def uncommitted(root: Path) -> list[str]:
    """Tracked files whose working copy differs from the last commit (the exercise uses them)."""
    try:
        return subprocess.run(
            ["git", "-C", str(root), "diff", "--name-only", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return []


def exclude_patterns(root: Path) -> list[str]:
    """The exclude list's patterns: one a line, '#' starts a comment, 'dir/' means all in it."""
    path = root / EXCLUDE_LIST
    if not path.is_file():
        return []
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def is_excluded(path: str, patterns: list[str]) -> bool:
    return any(
        path.startswith(p) if p.endswith("/") else fnmatch.fnmatchcase(path, p) for p in patterns
    )


def ruff_settings(root: Path) -> tuple[str, int]:
    """The text of the solution's ruff.toml ('' when there is none) and its line length."""
    path = root / RUFF_CONFIG
    text = path.read_text() if path.is_file() else ""
    try:
        return text, tomllib.loads(text).get("line-length", RUFF_LINE_LENGTH)
    except tomllib.TOMLDecodeError as err:
        raise ExerciseError(f"{RUFF_CONFIG}: not valid TOML ({err})") from None


def exercise_ruff_config(text: str, stub_files: list[str]) -> str:
    """The exercise's ruff.toml: the solution's, plus a per-file ignore of STUB_IGNORES for each
    file holding stubs, inserted at the top of its [lint.per-file-ignores] table (made if there is
    none).

    An unwritten region leaves the names its solution uses unused: imports (which `ruff check --fix`
    would delete), variables and loop variables of the given code around it. Students delete these
    lines once every stage is written, to get those checks back.
    """
    if not stub_files:
        return text
    lines = [STUB_IGNORES_NOTE] + [
        f'"{path}" = {json.dumps(list(STUB_IGNORES))}' for path in stub_files
    ]
    table = re.search(r"^\[lint\.per-file-ignores\][ \t]*(#.*)?\n", text, re.MULTILINE)
    if table:
        config = text[: table.end()] + "\n".join(lines) + "\n" + text[table.end() :]
    else:
        config = (
            text
            + ("\n" if text and not text.endswith("\n") else "")
            + "\n[lint.per-file-ignores]\n"
            + "\n".join(lines)
            + "\n"
        )
    try:
        ignores = tomllib.loads(config).get("lint", {}).get("per-file-ignores", {})
    except (
        tomllib.TOMLDecodeError
    ) as err:  # a file that has per-file ignores already: a duplicate key
        raise ExerciseError(
            f"{RUFF_CONFIG}: the exercise's per-file ignores for the stubs do not fit "
            f"({err}); give the files holding regions no per-file ignores"
        ) from None
    if any(ignores.get(path) != list(STUB_IGNORES) for path in stub_files):
        raise ExerciseError(
            f"{RUFF_CONFIG}: write its per-file ignores as a [lint.per-file-ignores] table, "
            f"so the exercise can add the stubs' ones"
        )
    return config


def first_party_modules(paths: list[str], source_folders: list[str]) -> frozenset[str]:
    """The names ruff sorts as first-party imports: the modules and packages (folders) at the top
    of its source folders (ruff.toml's `src`)."""
    names = set()
    for folder in source_folders:
        prefix = "" if folder.strip("./") == "" else folder.strip("/") + "/"
        for path in paths:
            if path.startswith(prefix):
                first, *rest = path.removeprefix(prefix).split("/")
                if rest or first.endswith(".py"):
                    names.add(first.removesuffix(".py"))
    return frozenset(names)


def build_exercise(root: Path, solved: frozenset[str] = frozenset()):
    """The exercise tree in memory: ({path: (content, executable)}, regions, excluded paths).

    Every marker problem in every file is collected before raising, so one run lists them all.
    """
    patterns = exclude_patterns(root)
    ruff_config, line_length = ruff_settings(root)
    paths = repository_files(root)
    first_party = first_party_modules(paths, tomllib.loads(ruff_config).get("src", RUFF_SRC))
    files, regions, excluded, errors = {}, [], [], []
    for path in paths:
        if is_excluded(path, patterns):
            excluded.append(path)
            continue
        data = (root / path).read_bytes()
        try:
            if path.endswith(".py"):
                text = data.decode("utf-8")
                text, found = make_exercise_source(text, path, solved, line_length, first_party)
                regions += found
                data = text.encode("utf-8")
            elif path.endswith(".md"):
                data = make_exercise_markdown(data.decode("utf-8"), path).encode("utf-8")
        except ExerciseError as err:
            errors.append(str(err))
            continue
        files[path] = (data, os.access(root / path, os.X_OK))
    unknown = sorted(set(solved) - {r.stage for r in regions})
    if unknown:
        errors.append(
            f"--solved {' '.join(unknown)}: no such stage; the stages are "
            f"{', '.join(dict.fromkeys(r.stage for r in regions))}"
        )
    stub_module = STUB_MODULE.replace(".", "/") + ".py"
    if any(r.stage not in solved for r in regions) and stub_module not in files:
        errors.append(
            f"{stub_module}: the stubs raise its {STUB_ERROR}, but the exercise does not ship it; "
            f"add it to the repository (and leave it out of {EXCLUDE_LIST})"
        )
    if errors:
        raise ExerciseError("\n".join(errors))
    if RUFF_CONFIG in files:
        stub_files = sorted({r.path for r in regions if r.stage not in solved})
        files[RUFF_CONFIG] = (
            exercise_ruff_config(ruff_config, stub_files).encode(),
            files[RUFF_CONFIG][1],
        )
    return files, regions, excluded


def write_tree(files: dict[str, tuple[bytes, bool]], out: Path) -> None:
    """Writes the tree into `out`, new or empty apart from .git (nothing is overwritten)."""
    if out.exists():
        if not out.is_dir():
            raise UsageError(f"--out {out} is a file; choose a new folder")
        leftovers = sorted(p.name for p in out.iterdir() if p.name != ".git")
        if leftovers:
            raise UsageError(
                f"--out {out} is not empty ({leftovers[0]} ...); choose a new folder, or "
                f"empty it first (in an exercise checkout: git rm -rq . && git clean -fdq)"
            )
    for path, (data, executable) in files.items():
        target = out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        if executable:
            target.chmod(target.stat().st_mode | 0o111)


def ignored_by_git(tree: Path, paths: list[str]) -> set[str]:
    """Those of `paths` (relative to `tree`) that the tree's own .gitignore files ignore: run
    outputs, data, pictures, caches. Asked of git with a scratch repository, so `tree` need not be a
    checkout and no ignore list of this machine's user counts."""
    if not paths:
        return set()
    with tempfile.TemporaryDirectory() as scratch:
        git = [
            "git",
            "--git-dir",
            scratch,
            "--work-tree",
            str(tree),
            "-c",
            f"core.excludesFile={os.devnull}",
        ]
        try:
            subprocess.run(
                ["git", "init", "-q", "--bare", scratch], check=True, capture_output=True
            )
            found = subprocess.run(
                [*git, "check-ignore", "--no-index", "--stdin", "-z"],
                input="\0".join(paths).encode(),
                capture_output=True,
            )
        except (OSError, subprocess.CalledProcessError) as err:
            raise UsageError(
                f"--check {tree}: git is needed to read its .gitignore ({err})"
            ) from None
    if found.returncode not in (0, 1):  # 1: none ignored
        raise UsageError(
            f"--check {tree}: git check-ignore failed ({found.stderr.decode().strip()})"
        )
    return {name for name in found.stdout.decode().split("\0") if name}


def file_diff(expected: bytes, found: bytes, path: str, limit: int = DIFF_LINES) -> list[str]:
    """How `found` differs from `expected`: a unified diff, one line of context, `limit` lines."""
    try:
        old, new = expected.decode().splitlines(), found.decode().splitlines()
    except UnicodeDecodeError:
        return [f"    (binary: {len(expected)} bytes expected, {len(found)} found)"]
    lines = list(
        difflib.unified_diff(old, new, f"{path} (generated)", f"{path} (found)", n=1, lineterm="")
    )
    if not lines:  # the same lines: only the line endings or the last newline differ
        lines = ["(the same lines; the line endings or the final newline differ)"]
    shown = lines[:limit] + (
        [f"... {len(lines) - limit} more diff lines"] if len(lines) > limit else []
    )
    return ["    " + line for line in shown]


def check_tree(files: dict[str, tuple[bytes, bool]], tree: Path) -> list[str]:
    """Differences between `tree` and the expected files, one problem each (empty: identical); a
    file whose content differs comes with a short diff on the lines after it. Files the tree's
    .gitignore ignores (runs, data, pictures, caches) are not part of its content, unless they are
    expected files."""
    if not tree.is_dir():
        raise UsageError(f"--check {tree}: no such folder; give the exercise tree's path")
    found = set()
    for folder, subfolders, names in os.walk(tree):
        subfolders[:] = sorted(s for s in subfolders if s != ".git")
        found.update(Path(folder, name).relative_to(tree).as_posix() for name in names)
    found -= ignored_by_git(tree, sorted(found - set(files)))
    problems = []
    for path in sorted(found | set(files)):
        if path not in files:
            problems.append(f"{path}: not part of the exercise version (left out or removed)")
        elif path not in found:
            problems.append(f"{path}: missing")
        elif (data := (tree / path).read_bytes()) != files[path][0]:
            problems.append(
                "\n".join(
                    [
                        f"{path}: differs from the generated version",
                        *file_diff(files[path][0], data, path),
                    ]
                )
            )
        elif os.access(tree / path, os.X_OK) != files[path][1]:
            problems.append(f"{path}: executable bit differs")
    return problems


def main(argv: list[str] | None = None) -> int:
    return report(run_command, argv)


def run_command(argv: list[str] | None) -> int:
    parser = OneLineParser(prog="tools/make_exercise.py", description=__doc__.split("\n\n")[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument(
        "--out", type=Path, metavar="DIR", help="write the exercise version into DIR"
    )
    action.add_argument(
        "--check", type=Path, metavar="DIR", help="verify that DIR is the exercise version"
    )
    action.add_argument("--stages", action="store_true", help="list the regions of each stage")
    parser.add_argument(
        "--solved",
        nargs="+",
        default=(),
        metavar="STAGE",
        help="keep these stages' solutions (an answer key for them)",
    )
    parser.add_argument(
        "--source", type=Path, default=REPO, help="the solution checkout (default: this one)"
    )
    args = parser.parse_args(argv)
    files, regions, excluded = build_exercise(args.source, frozenset(args.solved))
    if args.stages:
        for stage in dict.fromkeys(r.stage for r in regions):
            functions = dict.fromkeys(r.function for r in regions if r.stage == stage)
            print(f"{stage}: {', '.join(functions)}")
        return 0
    if args.check:
        problems = check_tree(files, args.check)
        for problem in problems:
            print(problem)
        if problems:
            raise DataError(
                f"{args.check} is not the exercise version of {args.source}: {len(problems)} "
                f"file(s) differ; regenerate it with --out"
            )
        print(f"{args.check} matches the exercise version ({len(files)} files)")
        return 0
    write_tree(files, args.out)
    replaced = [r for r in regions if r.stage not in args.solved]
    print(
        f"wrote {len(files)} files to {args.out}: {len(replaced)} solution regions in "
        f"{len({r.path for r in replaced})} files replaced by stubs; left out {len(excluded)}: "
        f"{', '.join(excluded) or 'none'}"
    )
    changed = [name for name in uncommitted(args.source) if name in files]
    if changed:
        print(
            f"note: {len(changed)} file(s) differ from the last commit and went in as they are: "
            f"{', '.join(changed[:5])}{' ...' if len(changed) > 5 else ''}; "
            f"commit before publishing"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
