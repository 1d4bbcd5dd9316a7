"""The docs say only what runs: every `resnas` command in README.md and docs/ names a real subcommand
and options it accepts, the quick ones run as written, and every link and picture points at a file.

`mkdocs build --strict` (run by `./dev test`) checks the site's own links, anchors and API reference;
these tests check what it cannot: the commands, the README's links, and that docs/img/ holds the
current pictures of bench/results/.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer.main
from nas_res.cli.main import app
from typer.testing import CliRunner

import nas_res

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]
SHELL_BLOCKS = {"bash", "console", "sh", "shell"}
PACKAGES = ("arch", "space", "data", "training", "inspect", "search", "results", "experiments")

# Commands that take a second or two, need no database, data or training: these are run, not only checked.
QUICK = {("spaces",), ("space", "show"), ("space", "sample"), ("zoo",), ("cost",), ("iso",), ("experiment", "list")}


@dataclass(frozen=True)
class Command:
    where: str  # file:line
    text: str  # as shown, continuations joined, prompt and comment kept out
    output: tuple[str, ...] = ()  # what a console block shows under it
    inline: bool = False  # a code span in the prose (often a command's name alone): checked, not run


def fenced_blocks(text: str):
    """(language, first line number, lines) of each fenced block."""
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        m = re.match(r"^```(\w*)", lines[i])
        if m:
            start, body = i + 2, []
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            yield m.group(1), start, body
        i += 1


def outside_fences(text: str) -> str:
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def shell_commands(path: Path) -> list[Command]:
    """Every `resnas` / `python bench/` / `bash bench/` line of the shell blocks, and the inline code spans that
    start with one of them."""
    rel = path.relative_to(ROOT).as_posix()
    found: list[Command] = []
    text = path.read_text()
    for lang, start, body in fenced_blocks(text):
        if lang not in SHELL_BLOCKS:
            continue
        j = 0
        while j < len(body):
            line, first = body[j], j
            while line.rstrip().endswith("\\") and j + 1 < len(body):
                j += 1
                line = line.rstrip()[:-1] + " " + body[j].strip()
            j += 1
            prompt = re.match(r"^\S*\$\s+", line)
            if prompt:
                line = line[prompt.end() :]
            elif lang == "console":
                continue  # output
            line = line.strip()
            if not re.match(r"^(resnas|python bench/|bash bench/)", line):
                continue
            output: list[str] = []
            if lang == "console":
                while j < len(body) and not re.match(r"^\S*\$\s+", body[j]):
                    output.append(body[j])
                    j += 1
            found.append(Command(f"{rel}:{start + first}", line, tuple(output)))
    for m in re.finditer(r"`((?:resnas |python bench/|bash bench/)[^`]*)`", outside_fences(text)):
        found.append(Command(f"{rel}:`{m.group(1)}`", m.group(1), inline=True))
    return found


COMMANDS = [c for page in PAGES for c in shell_commands(page)]
RESNAS = [c for c in COMMANDS if c.text.split()[0] == "resnas"]
SCRIPTS = [c for c in COMMANDS if c.text.split()[0] in ("python", "bash")]


def words(text: str, *, optional: bool) -> list[str]:
    """The shell words of a command as documented; `[...]` groups (optional parts, after a space) are kept
    (optional=True: their options are checked too) or dropped (optional=False: the command as run)."""
    group = r"(?<=\s)\[([^\[\]'\"]*)\]"
    text = re.sub(group, (lambda m: m.group(1)) if optional else "", text)
    return shlex.split(text, comments=True)


def walk(args: list[str]):
    """The click command that `resnas ARGS` reaches, the names on the way, and a list of problems."""
    cmd = typer.main.get_command(app)
    path: list[str] = []
    problems: list[str] = []
    for i, word in enumerate(args):
        if not hasattr(cmd, "commands"):
            return cmd, path, problems, args[i:]
        if word.startswith("-"):
            problems += bad_options(cmd, path, [word])
            continue
        sub = cmd.commands.get(word)
        if sub is None:
            name = " ".join(["resnas", *path])
            problems.append(f"`{name}` has no subcommand {word!r} (it has: {', '.join(cmd.commands)})")
            return cmd, path, problems, []
        cmd, path = sub, [*path, word]
    return cmd, path, problems, []


def bad_options(cmd, path: list[str], args: list[str]) -> list[str]:
    accepted = {"--help"}
    for param in cmd.params:
        if param.param_type_name != "option":
            continue
        accepted.update(getattr(param, "opts", ()))
        accepted.update(getattr(param, "secondary_opts", ()))
    problems = []
    for word in args:
        for part in word.split("|"):
            if not re.match(r"^--?[A-Za-z]", part):
                continue
            option = part.split("=", 1)[0]
            if option not in accepted:
                name = " ".join(["resnas", *path])
                problems.append(f"`{name}` does not accept {option} (it takes: {', '.join(sorted(accepted))})")
    return problems


def problems_of(text: str) -> list[str]:
    """What is wrong with a documented `resnas` command line: an unknown subcommand or option."""
    args = words(text, optional=True)[1:]
    cmd, path, problems, rest = walk(args)
    return problems + bad_options(cmd, path, rest)


@pytest.mark.parametrize("command", RESNAS, ids=lambda c: c.where)
def test_every_documented_command_and_option_exists(command: Command) -> None:
    assert not problems_of(command.text), f"{command.where}: {command.text}\n" + "\n".join(problems_of(command.text))


def test_the_checker_refuses_a_misspelt_option_and_subcommand() -> None:
    assert problems_of("resnas search --budgett 4G")
    assert problems_of("resnas space shwo resnext")
    assert problems_of("resnas leaderboard c10 [--json|--cvs]")
    assert not problems_of("resnas leaderboard c10-r29 [--top 20] [--all] [--json|--csv]")


def runnable(command: Command) -> list[str] | None:
    """The arguments to run, for a quick command of a shell block with nothing left to fill in; else None."""
    if command.inline:
        return None
    args = words(command.text, optional=False)[1:]
    _, path, _, _ = walk(args)
    if tuple(path) not in QUICK:
        return None
    for word in args:
        if re.fullmatch(r"[A-Z][A-Z_.]*|\.\.\.", word):  # a placeholder: NAME, FILE.yaml, ...
            return None
        if re.search(r"\.(ya?ml|json|pt)$", word) and not (ROOT / word).exists():  # the user's own file
            return None
    return args


TO_RUN = [(c, args) for c in RESNAS if (args := runnable(c)) is not None]
HELP = sorted({tuple(walk(words(c.text, optional=True)[1:])[1]) for c in RESNAS})


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    return CliRunner()


@pytest.mark.parametrize(("command", "args"), TO_RUN, ids=[c.where for c, _ in TO_RUN])
def test_quick_documented_commands_run_as_written(runner: CliRunner, command: Command, args: list[str]) -> None:
    result = runner.invoke(app, args, env={"COLUMNS": "160"})
    assert result.exit_code == 0, f"{command.where}: {command.text}\n{result.output}"
    # what a console block shows as its output: its numbers are the command's
    for line in command.output:
        for number in re.findall(r"[-+]?\d[\d,.]*%?", line):
            assert number in result.output, f"{command.where}: {number} (from {line!r}) is not in\n{result.output}"


@pytest.mark.parametrize("path", HELP, ids=lambda p: " ".join(["resnas", *p]))
def test_help_of_every_documented_command(runner: CliRunner, path: tuple[str, ...]) -> None:
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output


def test_quick_commands_are_found() -> None:
    ran = {tuple(walk(args)[1]) for _, args in TO_RUN}
    assert {("spaces",), ("space", "show"), ("zoo",), ("cost",), ("iso",)} <= ran, ran


@pytest.mark.parametrize("command", SCRIPTS, ids=lambda c: c.where)
def test_documented_scripts_exist_with_their_options(command: Command) -> None:
    args = words(command.text, optional=True)
    script = ROOT / args[1]
    assert script.is_file(), f"{command.where}: {args[1]} does not exist"
    source = script.read_text()
    for word in args[2:]:
        if re.match(r"^--[A-Za-z]", word):
            assert word.split("=")[0] in source, f"{command.where}: {script.name} takes no {word}"
        elif re.search(r"\.(ya?ml|py|sh)$", word):
            assert (ROOT / word).is_file(), f"{command.where}: {word} does not exist"


def test_documented_study_and_template_files_exist() -> None:
    for command in RESNAS:
        for word in words(command.text, optional=True):
            if re.match(r"^(studies|search_spaces|bench)/\S+\.ya?ml$", word):
                assert (ROOT / word).is_file(), f"{command.where}: {word} does not exist"


def github_slug(heading: str) -> str:
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_readme_links_point_at_files() -> None:
    readme = (ROOT / "README.md").read_text()
    anchors = {github_slug(h) for h in re.findall(r"^#+ (.*)$", outside_fences(readme), flags=re.M)}
    targets = re.findall(r"\]\(([^)\s]+)\)", readme) + re.findall(r"<img [^>]*src=\"([^\"]+)\"", readme)
    assert targets
    for target in targets:
        if re.match(r"^[a-z]+:", target):
            continue  # https:, mailto:
        file, _, anchor = target.partition("#")
        if not file:
            assert anchor in anchors, f"README.md links to #{anchor}, a heading it does not have"
        else:
            assert (ROOT / file).exists(), f"README.md links to {file}, which does not exist"


def test_doc_pictures_are_the_current_bench_results() -> None:
    copies = sorted((DOCS / "img").glob("*.png"))
    assert copies
    for copy in copies:
        original = ROOT / "bench" / "results" / copy.name
        assert original.is_file(), f"docs/img/{copy.name} has no original in bench/results/"
        assert copy.read_bytes() == original.read_bytes(), (
            f"docs/img/{copy.name} differs from bench/results/{copy.name}: cp bench/results/{copy.name} docs/img/"
        )


@pytest.mark.parametrize("package", PACKAGES)
def test_reference_lists_every_module(package: str) -> None:
    modules = {p.stem for p in (ROOT / "nas_res" / package).glob("*.py") if not p.stem.startswith("_")}
    page = (DOCS / "reference" / f"{package}.md").read_text()
    listed = set(re.findall(rf"^::: nas_res\.{package}\.(\w+)$", page, flags=re.M))
    assert listed == modules, f"docs/reference/{package}.md: add {modules - listed}, remove {listed - modules}"


def test_reference_lists_the_public_names() -> None:
    page = (DOCS / "reference" / "index.md").read_text()
    listed = re.findall(r"^        - (\S+)$", page, flags=re.M)
    assert sorted(listed) == sorted(nas_res.__all__)


def test_python_examples_compile() -> None:
    for page in PAGES:
        for lang, start, body in fenced_blocks(page.read_text()):
            if lang == "python":
                compile("\n".join(body), f"{page.relative_to(ROOT)}:{start}", "exec")
