"""Small configurations shared by the tests: models that train in a second or two."""
import dataclasses

from engines.core.interface import StageRecipe, TrainConfig
from engines.text.config import TextModelConfig


def tiny_model(cell: str = "lstm") -> TextModelConfig:
    return TextModelConfig(cell=cell, n_layer=2, n_hidden=48, dropout=0.1)


def tiny_train(steps: int = 40, **changes) -> TrainConfig:
    values = dict(batch_size=8, seq_len=32, lr=1e-2, warmup_steps=5, max_steps=steps, eval_interval=20,
                  log_interval=1)
    values.update(changes)
    return TrainConfig(**values)


def tiny_audio_model(**changes):
    from engines.audio.config import AudioModelConfig
    values = dict(stacks=1, layers_per_stack=5, residual_channels=16, gate_channels=16, skip_channels=32,
                  label_channels=8)
    values.update(changes)
    return AudioModelConfig(**values)


def recipes(model_config, train_config: TrainConfig, stage: str = "model") -> dict:
    """The trainer's per-stage recipes for a single-stage engine."""
    return {stage: StageRecipe(dataclasses.asdict(model_config), train_config)}


def studio(capsys, *args) -> tuple[int, str]:
    """Run the CLI in this process: its exit code and all it printed."""
    from studio.cli import main
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def train_tiny(capsys, corpus, out, *extra):
    return studio(capsys, "train", "text", "--data", corpus, "--out", out, "--preset", "tiny", "--device", "cpu",
                  "--no-preview", *extra)


def events_until(events, stop=None) -> list:
    """The trainer's events; stop=(stage, step) stops like the Stop button (closes the generator) after that step."""
    from engines.core.events import Progress
    seen = []
    for event in events:
        seen.append(event)
        if stop and isinstance(event, Progress) and (event.stage, event.step) == stop:
            events.close()
    return seen
