"""``tinyvmaf`` command line: a thin shell over the stage functions.

Each command lives in its own module, imported only when that command
runs, so ``tinyvmaf features`` does not pay for importing torch.  A module
named here provides ``register(parser)`` (adds its arguments) and
``run(args) -> int`` (the exit code).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

#: command → (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "corpus": ("tinyvmaf.corpus_cli", "build the demo corpus or import a Netflix-format dataset"),
    "features": ("tinyvmaf.features_cli", "libvmaf features and teacher VMAF of one pair, as JSON"),
    "extract": ("tinyvmaf.extract_cli", "DVC stage: manifest -> features.parquet"),
    "label": ("tinyvmaf.label_cli", "DVC stage: features -> labels.parquet with splits"),
    "train": ("tinyvmaf.train_cli", "DVC stage: train the arch sweep, keep the best on val PLCC"),
    "export": ("tinyvmaf.export_cli", "DVC stage: best checkpoint -> ONNX opset 17"),
    "gate": ("tinyvmaf.gate_cli", "DVC stage: golden, fidelity, parity and ops checks"),
    "score": ("tinyvmaf.score_cli", "score a pair with a trained ONNX student beside the teacher"),
    "params": ("tinyvmaf.config", "compose conf/ into params.yaml (or check it is in sync)"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: tinyvmaf COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<{width}}  {helptext}" for name, (_, helptext) in COMMANDS.items()]
    lines += ["", "`tinyvmaf COMMAND --help` for a command's arguments."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"tinyvmaf: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"tinyvmaf {name}", description=COMMANDS[name][1])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    module.register(parser)
    args = parser.parse_args(rest)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        print("tinyvmaf: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the CLI's one place to turn errors into exit codes
        if args.verbose:
            raise
        print(f"tinyvmaf {name}: error: {_describe(exc)}", file=sys.stderr)
        return 1


def _describe(exc: Exception) -> str:
    """One line naming what failed; a missing input is named as such, whoever raised it."""
    if isinstance(exc, FileNotFoundError):
        if exc.filename:
            return f"{exc.filename}: no such file (make it with the stage that writes it: `dvc repro`)"
        if " " not in str(exc):  # some libraries raise FileNotFoundError(path)
            return f"{exc}: no such file (make it with the stage that writes it: `dvc repro`)"
    if isinstance(exc, KeyError) and len(exc.args) == 1 and isinstance(exc.args[0], str):
        return exc.args[0]  # str(KeyError) would wrap the message in quotes
    return str(exc)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
