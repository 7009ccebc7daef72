"""`monitor train` and `monitor eval`: build and measure the topic classifier."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import click

from monitor import classifier, training
from monitor.errors import DataError

_data_option = click.option(
    "--data",
    "data",
    multiple=True,
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Labelled JSON Lines files (several may follow); later files win on duplicate ids.",
)


class _DataFilesCommand(click.Command):
    """Lets ``--data a.jsonl b.jsonl`` (a shell glob) mean ``--data a.jsonl --data b.jsonl``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        expanded: list[str] = []
        taking = False
        for index, arg in enumerate(args):
            if arg == "--":
                expanded.extend(args[index:])
                break
            if arg == "--data" or arg.startswith("--data="):
                taking = arg.startswith("--data=")
                expanded.append(arg)
                continue
            if arg.startswith("-"):
                taking = False
            elif expanded and expanded[-1] == "--data":
                taking = True
            elif taking:
                expanded.append("--data")
            expanded.append(arg)
        return super().parse_args(ctx, expanded)


def _stderr(message: str) -> None:
    click.echo(message, err=True)


def _created_at() -> datetime | None:
    # SOURCE_DATE_EPOCH (reproducible-builds convention) makes the whole file byte-identical.
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if not epoch:
        return None
    try:
        return datetime.fromtimestamp(int(epoch), UTC)
    except ValueError as exc:
        raise click.BadParameter(f"SOURCE_DATE_EPOCH={epoch!r} is not an integer") from exc


def format_table(evaluation: training.Evaluation) -> str:
    header = f"{'topic':<24}{'prec':>7}{'recall':>7}{'f1':>7}{'supp':>6}{'tp':>5}{'fp':>5}"
    lines = [header + f"{'fn':>5}{'tn':>6}"]
    for m in evaluation.topics:
        lines.append(
            f"{m.topic:<24}{m.precision:>7.3f}{m.recall:>7.3f}{m.f1:>7.3f}{m.support:>6}"
            f"{m.tp:>5}{m.fp:>5}{m.fn:>5}{m.tn:>6}"
        )
    lines.append(f"macro-F1 {evaluation.macro_f1:.3f} over {evaluation.n_examples} examples")
    return "\n".join(lines)


@click.command("train", cls=_DataFilesCommand)
@_data_option
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Model file to write (skops).",
)
@click.option("--seed", default=0, show_default=True, help="Seed: same data and seed, same model.")
@click.option(
    "--validation-fraction",
    type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
    default=None,
    help="Hold out this fraction to choose thresholds (default: 5-fold out-of-fold).",
)
@click.option(
    "--cv",
    "cv_folds",
    type=click.IntRange(min=0),
    default=0,
    help="Also report K-fold cross-validated metrics of the whole procedure (slower).",
)
def train_command(
    data: tuple[Path, ...],
    out: Path,
    seed: int,
    validation_fraction: float | None,
    cv_folds: int,
) -> None:
    """Train the topic classifier from labelled JSON Lines files."""
    if cv_folds == 1:
        raise DataError("--cv", None, "needs at least 2 folds")
    examples = training.read_examples(list(data), warn=_stderr)
    model = training.train(
        examples,
        seed=seed,
        validation_fraction=validation_fraction,
        progress=_stderr,
        created_at=_created_at(),
    )
    classifier.save(model, out)
    metrics = model.metadata["metrics"]
    _stderr(f"wrote {out} (validation macro-F1 {metrics['macro_f1']:.3f})")
    for topic in model.topics:
        row = metrics["topics"][topic]
        _stderr(
            f"  {topic}: threshold {model.thresholds[topic]:.3f} "
            f"precision {row['precision']:.3f} recall {row['recall']:.3f} f1 {row['f1']:.3f}"
        )
    if cv_folds:
        pooled, per_fold = training.cross_validate(
            examples, folds=cv_folds, seed=seed, progress=_stderr
        )
        click.echo(format_table(pooled))
        folds = " ".join(f"{x:.3f}" for x in per_fold)
        click.echo(f"{cv_folds}-fold macro-F1 per fold: {folds}")


@click.command("eval", cls=_DataFilesCommand)
@_data_option
@click.option(
    "--model",
    "model_spec",
    default="builtin",
    show_default=True,
    help='"builtin" or a model file.',
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def eval_command(data: tuple[Path, ...], model_spec: str, as_json: bool) -> None:
    """Measure a model on labelled JSON Lines files: per-topic counts and macro-F1."""
    model = classifier.load_model(model_spec, base_dir=Path.cwd())
    for warning in model.warnings:
        _stderr(f"warning: {warning}")
    examples = training.read_examples(list(data), warn=_stderr)
    unknown = sorted(set(training.topics_of(examples)) - set(model.topics))
    if unknown:
        _stderr(f"warning: labels unknown to the model are ignored: {', '.join(unknown)}")
    evaluation = training.evaluate(model, examples)
    if as_json:
        result = evaluation.to_dict()
        result["model"] = model_spec
        result["thresholds"] = dict(model.thresholds)
        result["training_data_sha256"] = model.metadata.get("training_data_sha256")
        click.echo(json.dumps(result, sort_keys=True))
    else:
        click.echo(format_table(evaluation))


def register(cli: click.Group) -> None:
    """Add this module's commands to the root group."""
    cli.add_command(train_command)
    cli.add_command(eval_command)
