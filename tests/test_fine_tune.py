"""Fine-tuning: `studio train --from CHECKPOINT` starts a new run from a trained model's weights, on another
corpus read the way that model read its own (what a user does to make the bundled model their own)."""
from engines.core.checkpoint import read_meta
from engines.core.trainer import NEW_PART_LR_SCALE
from helpers import studio, train_tiny

from conftest import write_corpus


def first_validation(run) -> float:
    return read_meta(run / "last.safetensors")["history"]["val_losses"][0]


def test_a_fine_tuned_run_starts_where_its_model_left_off_and_says_so(capsys, tmp_path):
    base, fresh, tuned = tmp_path / "base", tmp_path / "fresh", tmp_path / "tuned"
    assert train_tiny(capsys, write_corpus(tmp_path / "a.txt", seed=1), base, "--steps", 60)[0] == 0
    mine = write_corpus(tmp_path / "mine.txt", n_chars=5_000, seed=2)        # same alphabet, other text
    assert train_tiny(capsys, mine, fresh, "--steps", 5)[0] == 0
    code, text = train_tiny(capsys, mine, tuned, "--steps", 5, "--from", base)
    assert code == 0, text
    # the untrained model's step-0 loss is about ln(vocabulary); the fine-tuned one's is the base model's level
    assert first_validation(tuned) < first_validation(fresh) - 0.5
    header = read_meta(tuned / "last.safetensors")
    base_header = read_meta(base / "best.safetensors")
    assert header["started_from"]["file"] == "best.safetensors"
    assert header["started_from"]["step"] == base_header["step"] and header["step"] == 5
    assert header["model_config"] == base_header["model_config"]
    assert header["corpus"]["vocab"] == base_header["corpus"]["vocab"]


def test_fine_tuning_is_refused_with_resume(capsys, tmp_path):
    corpus = write_corpus(tmp_path / "a.txt")
    code, text = train_tiny(capsys, corpus, tmp_path / "run", "--resume", "--from", tmp_path / "base")
    assert code == 2 and "not both" in text and "--resume alone" in text


def test_model_settings_set_explicitly_apply_to_the_fine_tuned_model_but_not_a_new_shape(capsys, tmp_path):
    base, mine = tmp_path / "base", write_corpus(tmp_path / "mine.txt", n_chars=5_000, seed=2)
    assert train_tiny(capsys, write_corpus(tmp_path / "a.txt", seed=1), base, "--steps", 5)[0] == 0
    code, text = train_tiny(capsys, mine, tmp_path / "tuned", "--steps", 2, "--from", base, "--set", "model.dropout=0.3")
    assert code == 0, text
    assert read_meta(tmp_path / "tuned" / "last.safetensors")["model_config"]["dropout"] == 0.3
    code, text = train_tiny(capsys, mine, tmp_path / "wider", "--steps", 2, "--from", base, "--set", "model.n_hidden=96")
    assert code == 2 and "model.n_hidden=96 would change the shape" in text and "Traceback" not in text, text


def test_a_setting_that_adds_a_part_fine_tunes_with_that_part_new_and_named(capsys, tmp_path):
    """An ink model from before the end flag existed takes it on when fine-tuned with model.end_flag=true (the
    rest of its weights kept); the reverse would drop trained weights, and is refused."""
    from test_ink_engine import write_hershey_corpus
    data = write_hershey_corpus(tmp_path / "data", lines=40)
    ink = ("train", "ink", "--data", data, "--preset", "tiny", "--device", "cpu", "--no-preview", "--steps", 2)
    code, text = studio(capsys, *ink, "--out", tmp_path / "old", "--set", "model.end_flag=false")
    assert code == 0, text
    code, text = studio(capsys, *ink, "--out", tmp_path / "new", "--from", tmp_path / "old",
                        "--set", "model.end_flag=true")
    assert code == 0, text
    header = read_meta(tmp_path / "new" / "last.safetensors")
    assert header["model_config"]["end_flag"] and header["started_from"]["new_parts"] == ["end.weight", "end.bias"]
    # the new part learns faster than the trained weights it joins (in its own optimizer groups)
    assert [g["lr_scale"] for g in header["optimizer_groups"]] == [1.0, 1.0, NEW_PART_LR_SCALE, NEW_PART_LR_SCALE]
    assert [len(g["params"]) for g in header["optimizer_groups"][2:]] == [1, 1]
    code, text = studio(capsys, *ink[:-1], 4, "--out", tmp_path / "new", "--resume")     # and so on resuming
    assert code == 0, text
    resumed = read_meta(tmp_path / "new" / "last.safetensors")
    assert resumed["step"] == 4
    assert [g["lr_scale"] for g in resumed["optimizer_groups"]] == [1.0, 1.0, NEW_PART_LR_SCALE, NEW_PART_LR_SCALE]
    code, text = studio(capsys, *ink, "--out", tmp_path / "back", "--from", tmp_path / "new",
                        "--set", "model.end_flag=false")
    assert code == 2 and "model.end_flag=False would change the shape" in text, text


def test_fine_tuning_an_ink_model_on_a_new_hand_makes_it_a_style_and_the_default(capsys, tmp_path):
    """Your own hand fine-tuned onto a trained model: its lines become a style beside the model's writers, and
    Style 'default' writes in it; resuming keeps both."""
    import json
    from test_ink_engine import write_hershey_corpus
    ink = ("train", "ink", "--preset", "tiny", "--device", "cpu", "--no-preview", "--steps", 2)
    code, text = studio(capsys, *ink, "--data", write_hershey_corpus(tmp_path / "data", lines=40),
                        "--out", tmp_path / "base")
    assert code == 0, text
    mine = write_hershey_corpus(tmp_path / "mine", lines=12, seed=1)
    rows = [json.loads(line) for line in (mine / "texts.jsonl").read_text().splitlines()]
    (mine / "texts.jsonl").write_text("".join(json.dumps({**row, "writer": "ada"}) + "\n" for row in rows))
    code, text = studio(capsys, *ink, "--data", mine, "--out", tmp_path / "tuned", "--from", tmp_path / "base")
    assert code == 0 and "new style(s) for the fine-tuned model: ada (Style 'default' writes in it)" in text, text
    base = read_meta(tmp_path / "base" / "last.safetensors")["corpus"]
    tuned = read_meta(tmp_path / "tuned" / "last.safetensors")["corpus"]
    assert sorted(base["styles"]) == ["w0", "w1", "w2"] and "default_style" not in base
    assert tuned["styles"] == {**base["styles"], "ada": tuned["styles"]["ada"]} and tuned["default_style"] == "ada"
    code, text = studio(capsys, *ink[:-1], 3, "--data", mine, "--out", tmp_path / "tuned", "--resume")
    assert code == 0, text
    assert read_meta(tmp_path / "tuned" / "last.safetensors")["corpus"] == tuned
    # a run resumed on changed data with yet another writer (--new-data) adds no style: only a fine-tune does
    rows = [json.loads(line) for line in (mine / "texts.jsonl").read_text().splitlines()]
    (mine / "texts.jsonl").write_text("".join(json.dumps({**row, "writer": "bo" if row["index"] % 2 else "ada"}) + "\n"
                                              for row in rows))
    code, text = studio(capsys, *ink[:-1], 4, "--data", mine, "--out", tmp_path / "tuned", "--resume", "--new-data")
    assert code == 0 and "new style" not in text, text
    assert read_meta(tmp_path / "tuned" / "last.safetensors")["corpus"] == tuned
    code, text = studio(capsys, "sample", "ink", "--checkpoint", tmp_path / "tuned", "--text", "an ox",
                        "--out", tmp_path / "ox.svg")
    assert code == 0 and "in the hand of writer ada" in text, text
