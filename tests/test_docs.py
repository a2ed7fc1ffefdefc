"""The docs stay true: every command in the README's and docs' code blocks exists, every console
script answers ``--help`` with examples, Python snippets run, and CI runs the README's test command."""
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "recipes" / "librispeech" / "README.md"]
EXTERNAL = {"torchrun", "srun", "tensorboard", "nice", "python", "pip", "sox", "git", "cd", "export", "for", "done",
            "apt-get", "cat", "ls", "source", "mkdir"}


def code_blocks(path: Path, language: str):
    return re.findall(rf"```{language}\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S)


def commands(path: Path):
    """Each shell command of the file's ``bash`` blocks, continuation lines joined, comments dropped."""
    for block in code_blocks(path, "bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if line and not line.startswith("#"):
                for part in re.split(r"\s*(?:&&|\|\||;)\s*", line):
                    if part:
                        yield part


def program_and_args(command: str):
    words = shlex.split(command)
    while words and (re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]) or words[0] in ("nice", "env", "do", "then")):
        words = words[1:]  # VAR=value prefixes, nice
    if not words:
        return None, []
    program = words[0].removeprefix(".venv/bin/")
    return program, words[1:]


CONSOLE_SCRIPTS = sorted(
    line.split("=")[0].strip().strip('"')
    for line in re.findall(r'"(hypervq-[a-z-]+)=', (REPO / "setup.py").read_text())
)
ALL_COMMANDS = [(doc.relative_to(REPO).as_posix(), c) for doc in DOCS for c in commands(doc)]


def test_docs_hold_commands():
    assert len(ALL_COMMANDS) > 40 and CONSOLE_SCRIPTS


@pytest.mark.slow
@pytest.mark.parametrize("doc, command", ALL_COMMANDS, ids=[f"{d}:{c[:60]}" for d, c in ALL_COMMANDS])
def test_every_documented_command_exists(doc, command):
    program, args = program_and_args(command)
    if program is None or program in EXTERNAL:
        return
    if program == "bash":
        script = REPO / args[0]
        assert script.is_file(), f"{doc}: {args[0]} does not exist"
        assert subprocess.run(["bash", "-n", str(script)]).returncode == 0, f"{doc}: {args[0]} has a syntax error"
        return
    if program.startswith("hypervq-"):
        assert program in CONSOLE_SCRIPTS, f"{doc}: {program} is not a console script of setup.py"
        sub = args[0] if args and not args[0].startswith("-") and program == "hypervq-vision" else None
        if sub is not None:
            help_text = _help("hypervq-vision")
            assert sub in help_text, f"{doc}: hypervq-vision has no subcommand {sub}"
        return
    if program == "fairseq-hydra-train":
        if "--config-name" in args and "--config-dir" not in args:
            name = args[args.index("--config-name") + 1]
            assert list((REPO / "configs").rglob(f"{name}.yaml")), f"{doc}: no config {name}"
        return
    assert (BIN / program).exists() or program.startswith(("fairseq-", "hypervq")), f"{doc}: unknown program {program}"


_HELP = {}


def _help(script: str) -> str:
    if script not in _HELP:
        proc = subprocess.run([str(BIN / script), "--help"], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, f"{script} --help exited {proc.returncode}: {proc.stderr[-2000:]}"
        _HELP[script] = proc.stdout
    return _HELP[script]


@pytest.mark.slow
@pytest.mark.parametrize("script", CONSOLE_SCRIPTS)
def test_console_scripts_answer_help_with_examples(script):
    text = _help(script)
    assert "usage:" in text and "examples" in text.lower(), f"{script} --help lacks examples"
    tail = [line.strip() for line in text.rstrip().splitlines()][-8:]
    assert any(line.startswith(script) for line in tail), f"{script} --help should end with example commands"


SNIPPETS = [(doc.relative_to(REPO).as_posix(), i, s) for doc in DOCS for i, s in enumerate(code_blocks(doc, "python"))]


@pytest.mark.slow
@pytest.mark.parametrize("doc, index, snippet", SNIPPETS, ids=[f"{d}#{i}" for d, i, _ in SNIPPETS])
def test_python_snippets_run(doc, index, snippet, tmp_path):
    """Self-contained snippets run; those that name the user's own files (checkpoints, manifests)
    are compiled and their imports run."""
    needs_files = re.search(r"\.(pt|tsv)\b|manifests/|runs/", snippet)
    code = "\n".join(l for l in snippet.splitlines() if l.startswith(("import ", "from "))) if needs_files else snippet
    compile(snippet, f"{doc} snippet {index}", "exec")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{doc} snippet {index}:\n{proc.stderr[-3000:]}"


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text().splitlines()
    first_block = code_blocks(REPO / "README.md", "bash")[0]
    test_line = next(line for line in first_block.splitlines() if "pytest" in line).split("#")[0].strip()
    assert readme[0].startswith("# hypervq-fairseq") and readme[2] == "```bash"
    assert test_line in (REPO / ".ci" / "run").read_text()
    assert len(readme) <= 250, f"README.md has {len(readme)} lines; details belong in docs/"
