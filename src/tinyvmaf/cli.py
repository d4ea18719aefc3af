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

#: command → (module, one-line help), in pipeline order
COMMANDS: dict[str, tuple[str, str]] = {
    "corpus": ("tinyvmaf.corpus.cli", "build the demo corpus or import a Netflix-format dataset"),
    "features": ("tinyvmaf.extract.features_cli", "libvmaf features and teacher VMAF of one pair"),
    "extract": ("tinyvmaf.extract.cli", "DVC stage: manifest -> features.parquet"),
    "golden": ("tinyvmaf.golden.cli", "DVC stage: the extractor against Netflix's golden values"),
    "label": ("tinyvmaf.label.cli", "DVC stage, per student: features -> labels/<teacher>.parquet with splits"),
    "sample": ("tinyvmaf.sample.cli", "DVC stage, per student: teacher-labelled feature vectors"),
    "train": ("tinyvmaf.train.cli", "DVC stage, per student: train its archs, keep the winner"),
    "export": (
        "tinyvmaf.export.cli",
        "DVC stage, per student: checkpoint -> ONNX opset 17 + sidecar; the exact teacher",
    ),
    "eval": (
        "tinyvmaf.evaluate.cli",
        "fidelity of any model; --stage: the DVC eval stage; --loco: leave-one-content-out",
    ),
    "gate": ("tinyvmaf.gate.cli", "DVC stage, per student: contract, ops, golden, fidelity, parity, exact graph"),
    "registry": ("tinyvmaf.model.registry", "DVC stage: registry.json from every student's passing gate"),
    "score": ("tinyvmaf.scoring.cli", "score a pair with ONNX students beside the teacher"),
    "model": ("tinyvmaf.model.cli", "check, release or promote a tiny model (sidecar, registry, MLflow)"),
    "repro": ("tinyvmaf.experiments.repro_cli", "dvc repro with independent stages at once (each still run by DVC)"),
    "queue": ("tinyvmaf.experiments.cli", "run the DVC experiment queue to completion, reliably"),
    "params": ("tinyvmaf.config.cli", "compose conf/ into params.yaml (or check it is in sync)"),
    "cpu": ("tinyvmaf.common.cpu_cli", "what each CPU-dependent library uses in a pinned process (JSON)"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: tinyvmaf COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<{width}}  {helptext}" for name, (_, helptext) in COMMANDS.items()]
    lines += ["", "`tinyvmaf COMMAND --help` for a command's arguments."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    if argv is None:  # a real command line (not a call from Python, whose process is not ours to re-execute)
        from tinyvmaf.common.cpu import pin_process  # first: re-executes with the CPU pins before numpy/torch load

        pin_process()
    from tinyvmaf.common.audit import record_opens  # files read, when $TINYVMAF_AUDIT_OPENS names a log (tests)

    record_opens()
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
