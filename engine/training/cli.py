"""The command line every ``salience train TASK`` shares: its common options, printed progress,
thread setup, and the one-line error or summary it ends with."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from engine.errors import SalienceError

#: ``../shared/data`` beside the checkout: the recipes read their data from there by default.
SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def set_threads(threads: int) -> None:
    """Use ``threads`` torch CPU threads; another count changes the weights in the last bits."""
    torch.set_num_threads(threads)


class PrintProgress:
    """Prints each new progress message to stderr as ``[ 45%] message`` (the CLI's progress)."""

    def __init__(self) -> None:
        self._last = ""

    def report(self, fraction: float, message: str = "") -> None:
        if message and message != self._last:
            print(f"[{fraction:4.0%}] {message}", file=sys.stderr, flush=True)
            self._last = message

    def cancelled(self) -> bool:
        return False


def training_parser(task: str, description: str, default_data: Path, split_seed_help: str) -> argparse.ArgumentParser:
    """The options every ``salience train TASK`` takes: ``--data --out --epochs --seed --split-seed
    --threads``; a recipe adds its own.

    Args:
        task: the task name, as in ``salience train TASK``.
        description: the recipe's one-line description.
        default_data: the data folder read when ``--data`` is not given.
        split_seed_help: what ``--split-seed`` splits, e.g. "patient split".
    """
    parser = argparse.ArgumentParser(prog=f"salience train {task}", description=description)
    parser.add_argument("--data", type=Path, default=default_data, help=f"{default_data.name} folder (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path(f"{task}-bundle"), help="bundle folder to write")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0, help="initial weights, batch order, augmentation")
    parser.add_argument("--split-seed", type=int, default=0, help=f"{split_seed_help} (keep it fixed to compare runs)")
    parser.add_argument(
        "--threads", type=int, default=1,
        help="torch CPU threads; the shipped weights used 1 (results differ in the last bits with another count)",
    )
    return parser


def run_training(
    args: argparse.Namespace,
    train: Callable[..., dict[str, Any]],
    summary: Callable[[dict[str, Any]], str],
    **options: Any,
) -> int:
    """Run a recipe from parsed ``training_parser`` options: set the threads, print progress, report.

    Args:
        args: the parsed common options.
        train: the recipe, called as ``train(args.data, args.out, epochs=..., seed=...,
            split_seed=..., progress=..., **options)``; returns its metrics.
        summary: the line printed on success, from the metrics.
        options: the recipe's own keyword arguments.

    Returns:
        The exit code: 0, or 1 after printing ``error: <reason>`` on stderr for a ``SalienceError``.
    """
    set_threads(args.threads)
    try:
        metrics = train(
            args.data, args.out, epochs=args.epochs, seed=args.seed, split_seed=args.split_seed,
            progress=PrintProgress(), **options,
        )
    except SalienceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(summary(metrics))
    return 0
