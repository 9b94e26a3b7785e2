"""Every ``python -m gan_jax...`` command line in README.md (and experiments/tpu_pod/README.md) parses
with the real command's parser (issue 23, must-show 4): absl flags for ``gan_jax.main``,
``gan_jax.sample`` and ``gan_jax.evaluate``, argparse for ``gan_jax.convert`` and
``gan_jax.data.prepare``. A renamed or removed flag fails here, naming the README line.

The absl commands are parsed in one subprocess per module (each defines its flags in absl's global
registry, and ``gan_jax.main`` and ``gan_jax.sample`` both define ``--workdir``). ``--config=PATH``
of ``gan_jax.main`` is checked as the command resolves it (a packaged config), and its
``--config.a.b`` overrides against that config's fields; a config the README makes first
(``runs/ffhq/config.py``, ``my_lab/...``) is left out.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys

import pytest

from conftest import REPO

READMES = [REPO / "README.md", REPO / "experiments" / "tpu_pod" / "README.md"]
ABSL = ("gan_jax.main", "gan_jax.sample", "gan_jax.evaluate", "gan_jax.project")
ARGPARSE = ("gan_jax.convert", "gan_jax.data.prepare")
POSITIONAL = {"gan_jax.sample": {"generate", "style-mix", "interpolate"}}


def readme_commands(path) -> list[tuple[str, str, list[str]]]:
    """``(where, module, argv)`` of every ``python -m gan_jax.X ...`` in the code blocks (continuation
    lines joined, ``# comments`` dropped) and inline code spans of ``path``."""
    text = path.read_text()
    found = []
    blocks = re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S)
    prose = re.sub(r"```[a-z]*\n.*?```", "", text, flags=re.S)
    pieces = [line for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    pieces += [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", prose)]
    for piece in pieces:
        if "python -m gan_jax" not in piece:
            continue
        words = shlex.split(piece, comments=True)
        i = words.index("-m")
        module, argv = words[i + 1], words[i + 2:]
        if "|" in argv:  # a pipe (e.g. `| tee log`) ends the command
            argv = argv[:argv.index("|")]
        argv = [a for a in argv if a != "..."]  # "python -m gan_jax.main ... --multihost": the rest of a command
        found.append((f"{path.name}: {piece.strip()}", module, argv))
    return found


COMMANDS = [c for readme in READMES if readme.exists() for c in readme_commands(readme)]

_ABSL_CHECKER = r"""
import importlib, json, sys
from absl import flags
module, commands = sys.argv[1], json.loads(sys.stdin.read())
mod = importlib.import_module(module)
if hasattr(mod, "_define_flags"):
    mod._define_flags()  # gan_jax.evaluate defines its flags when run as a program
out = []
for argv in commands:
    flags.FLAGS.unparse_flags()
    try:
        rest = flags.FLAGS(["prog"] + argv)
        out.append({"ok": True, "rest": rest[1:]})
    except flags.Error as e:
        out.append({"ok": False, "error": f"{type(e).__name__}: {e}"})
print("RESULT" + json.dumps(out))
"""


def _main_argv(argv: list[str]) -> tuple[list[str], str | None, list[str]]:
    """gan_jax.main's argv without ``--config`` and its overrides, the resolved config spec (None when
    the README makes that config itself) and the overrides."""
    from gan_jax import config_files

    spec, plain, overrides = config_files.DEFAULT_CONFIG, [], []  # no --config: the embedded demo's
    for arg in argv:
        if arg.startswith("--config="):
            path, sep, variant = config_files.resolve_config_spec(arg[len("--config="):]).partition(":")
            full = REPO / path  # an absolute path (the packaged config) stays itself
            spec = f"{full}{sep}{variant}" if full.is_file() else None
        elif arg.startswith("--config."):
            overrides.append(arg)
        else:
            plain.append(arg)
    return plain, spec, overrides


def test_the_readme_has_commands_of_every_tool():
    modules = {module for _, module, _ in COMMANDS}
    assert {"gan_jax.main", "gan_jax.sample", "gan_jax.evaluate", "gan_jax.convert", "gan_jax.data.prepare"} <= modules
    assert not modules - set(ABSL) - set(ARGPARSE), f"a README command of an unknown tool: {modules}"


@pytest.mark.parametrize("module", ABSL)
def test_absl_commands_parse(module):
    commands = [(where, argv) for where, m, argv in COMMANDS if m == module]
    argvs = [(_main_argv(argv)[0] if module == "gan_jax.main" else argv) for _, argv in commands]
    out = subprocess.run([sys.executable, "-c", _ABSL_CHECKER, module], input=json.dumps(argvs), cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads(out.stdout.split("RESULT", 1)[1])
    bad = [f"{where}\n    {r['error']}" for (where, _), r in zip(commands, results) if not r["ok"]]
    bad += [f"{where}\n    unexpected arguments {r['rest']}" for (where, _), r in zip(commands, results)
            if r["ok"] and set(r["rest"]) - POSITIONAL.get(module, set())]
    assert not bad, "README commands that do not parse:\n" + "\n".join(bad)


def test_main_config_files_and_overrides_exist():
    from gan_jax import config_files

    checked = 0
    for where, module, argv in COMMANDS:
        if module != "gan_jax.main":
            continue
        _, spec, overrides = _main_argv(argv)
        if spec is None:
            continue
        config = config_files.load_config(spec)
        config_files.check_config_overrides(["prog", *overrides], config)  # app.UsageError names the closest key
        checked += 1
    assert checked >= 3


@pytest.mark.parametrize("where, module, argv", [c for c in COMMANDS if c[1] in ARGPARSE],
                         ids=[c[0][:80] for c in COMMANDS if c[1] in ARGPARSE])
def test_argparse_commands_parse(where, module, argv, monkeypatch):
    if module == "gan_jax.data.prepare":
        from gan_jax.data import prepare

        prepare._parse(argv)  # argparse exits (SystemExit 2) on an unknown or invalid flag
        return
    from gan_jax import convert

    seen = []
    monkeypatch.setattr(convert, "_convert_from_args", lambda args: seen.append(args) or "config.py")
    convert.main(argv)
    args = seen[0]
    assert bool(args.source) != bool(args.biggan_G), where


def test_every_training_config_has_a_tiny_variant_but_the_benchmark():
    """README: "Every training config has a `:tiny` variant ... (all but `stylegan2_bench32.py`)"."""
    import importlib

    text = (REPO / "README.md").read_text()
    assert "Every training config has a `:tiny` variant" in text and "all but `stylegan2_bench32.py`" in text
    without = []
    for path in sorted((REPO / "configs").glob("*.py")):
        module = importlib.import_module(f"gan_jax.configs.{path.stem}")
        if not hasattr(module, "get_config"):
            continue
        try:
            module.get_config("tiny")
        except ValueError:
            without.append(path.name)
    assert without == ["stylegan2_bench32.py"]
