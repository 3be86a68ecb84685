"""`crossling distill` on tiny offline teachers: sizes, embedding projection, every loss term's sign
and weight, both KD paths, training, resume, determinism, the saved directory and `adapt --base`."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from crossling.cli import main
from crossling.config import ConfigError, TrainingConfig
from crossling.distill import (
    STUDENT_SIZES,
    DistillConfig,
    DistilledStudent,
    balanced_sample,
    discriminator_loss,
    distill,
    distill_training_config,
    hidden_distillation_loss,
    logit_distillation_loss,
    masked_lm_loss,
    parse_corpus_specs,
    project_embeddings,
    sampling_probabilities,
    training_objective,
)
from crossling.distill.corpus import allocate
from crossling.distill.model import DistillationModel
from crossling.distill.student import build_student, load_teacher
from crossling.distill.train import DistillCollator
from crossling.errors import CrosslingError
from crossling.language import mean_pool
from crossling.testing import tiny_corpus

TINY = {"num_layers": 1, "hidden_size": 16, "num_heads": 2}


def tiny_config(**overrides) -> DistillConfig:
    return DistillConfig.load("unibert", **{**TINY, "eval_lines": 10, **overrides})


def smoke(**overrides) -> TrainingConfig:
    return distill_training_config("smoke", **{"max_steps": 4, "batch_size": 8, "save_steps": 2, **overrides})


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny models on a shared CPU: one thread is several times faster than two contended ones."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def corpus_files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("distill-corpus")
    files = {}
    for lang, n in (("en", 160), ("xx", 60)):
        files[lang] = root / f"{lang}.txt"
        files[lang].write_text("\n".join(tiny_corpus(n, lang)) + "\n", encoding="utf-8")
    return files


@pytest.fixture(scope="module")
def headless_teacher(tmp_path_factory, tiny_bert_dir) -> Path:
    """The tiny BERT saved without its MLM head, like multilingual-e5-small."""
    from transformers import AutoModel, AutoTokenizer

    out = tmp_path_factory.mktemp("headless-teacher")
    AutoModel.from_pretrained(tiny_bert_dir).save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_bert_dir).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def cli_student(tmp_path_factory, tiny_xlmr_dir, corpus_files) -> tuple[Path, str]:
    """A student distilled through the CLI from the tiny XLM-R (it has an MLM head), and its summary."""
    out = tmp_path_factory.mktemp("students") / "xxs"
    args = ["distill", "--teacher", str(tiny_xlmr_dir), "--out", str(out), "--budget", "smoke"]
    args += ["--corpus", *(f"{lang}={path}" for lang, path in corpus_files.items())]
    args += ["--layers", "1", "--hidden", "16", "--heads", "2", "--max-steps", "4", "--eval-lines", "10"]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(args) == 0
    return out, printed.getvalue()


@pytest.fixture(scope="module")
def student_dir(cli_student) -> Path:
    return cli_student[0]


# ---------------------------------------------------------------------- sizes and student construction
def test_size_presets_are_the_papers():
    shapes = {name: (s.layers, s.hidden, s.heads) for name, s in STUDENT_SIZES.items()}
    assert shapes == {"xxsmall": (4, 128, 4), "xsmall": (4, 256, 8), "small": (6, 512, 8)}
    assert DistillConfig.load(None, size="small").student.feed_forward == 2048
    custom = DistillConfig.load(None, **TINY)
    assert (custom.student.layers, custom.student.hidden, custom.size_name) == (1, 16, "custom")
    with pytest.raises(ConfigError, match="size"):
        DistillConfig.load(None, size="huge")
    with pytest.raises(ConfigError, match="divisible"):
        DistillConfig.load(None, hidden_size=30, num_heads=4)
    cfg = DistillConfig.load("unibert")
    assert (cfg.mlm_weight, cfg.adversarial_weight, cfg.kd_weight, cfg.kd_temperature) == (0.5, 0.1, 0.4, 2.0)
    assert (cfg.mlm_probability, cfg.label_smoothing) == (0.15, 0.1)
    assert DistillConfig.load("no-adv").adversarial_weight == 0.0
    training = distill_training_config("cpu")
    assert (training.weight_decay, training.max_grad_norm) == (0.01, 5.0) and training.warmup_ratio > 0


@pytest.mark.parametrize("size", list(STUDENT_SIZES))
def test_student_shapes_per_size(tiny_xlmr_dir, size):
    teacher = load_teacher(tiny_xlmr_dir)
    shape = STUDENT_SIZES[size]
    student, basis, report = build_student(teacher, shape)
    config = student.config
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads) == (
        shape.layers,
        shape.hidden,
        shape.heads,
    )
    assert config.intermediate_size == 4 * shape.hidden
    assert config.vocab_size == teacher.model.config.vocab_size  # the teacher's vocabulary
    assert config.pad_token_id == teacher.tokenizer.pad_token_id
    assert student.get_input_embeddings().weight.shape == (teacher.model.config.vocab_size, shape.hidden)
    assert student.get_output_embeddings().weight is student.get_input_embeddings().weight  # tied
    # the student (hidden >= 32) is as wide as the tiny teacher or wider: an exact orthonormal embedding
    assert basis.shape == (32, shape.hidden) and report["projection"]["energy_kept"] == 1.0


def test_untied_decoder_leaves_unseen_tokens_alone(tiny_xlmr_dir):
    teacher = load_teacher(tiny_xlmr_dir)
    config = tiny_config(tie_decoder=False, adversarial_weight=0.0, kd_weight=0.0, mlm_weight=1.0)
    student, _, report = build_student(teacher, config.student, tie_decoder=False)
    inputs, outputs = student.get_input_embeddings().weight, student.get_output_embeddings().weight
    assert report["decoder"] == "untied" and inputs is not outputs and torch.equal(inputs, outputs)
    model = DistillationModel(student, teacher.model, config, languages=["en"], kd_mode="logits")
    batch = _batch(teacher.tokenizer, {"en": tiny_corpus(4, "en")}, ["en"])
    model(**batch)["loss"].backward()
    touched = torch.zeros(inputs.shape[0], dtype=torch.bool)
    touched[batch["input_ids"].unique()] = True
    assert inputs.grad[~touched].abs().sum() == 0, "no gradient for rows of tokens not in the batch"
    assert outputs.grad[~touched].abs().sum() > 0, "the decoder still learns every row"


def test_student_embeddings_are_the_teachers_projected(tiny_xlmr_dir):
    teacher = load_teacher(tiny_xlmr_dir)
    student, basis, report = build_student(teacher, DistillConfig.load(None, **TINY).student)
    source = teacher.model.base_model.embeddings.word_embeddings.weight
    assert report["projection"]["method"] == "truncated-svd"
    assert torch.allclose(student.get_input_embeddings().weight, source @ basis, atol=1e-5)
    assert torch.allclose(basis.T @ basis, torch.eye(16), atol=1e-5)  # orthonormal directions


def _neighbours(matrix: torch.Tensor, k: int) -> torch.Tensor:
    unit = F.normalize(matrix.double(), dim=1)
    sims = unit @ unit.T
    sims.fill_diagonal_(-2)
    return sims.topk(k, dim=1).indices


def _overlap(a: torch.Tensor, b: torch.Tensor) -> float:
    return sum(len(set(x.tolist()) & set(y.tolist())) for x, y in zip(a, b, strict=True)) / a.numel()


def test_projection_keeps_nearest_neighbours():
    gen = torch.Generator().manual_seed(0)
    # embeddings with structure in a few directions (as trained embeddings have) plus noise
    latent = torch.randn(400, 10, generator=gen) @ torch.randn(10, 64, generator=gen)
    embeddings = latent + 0.1 * torch.randn(400, 64, generator=gen)
    projected, basis, report = project_embeddings(embeddings, 16)
    assert projected.shape == (400, 16) and basis.shape == (64, 16)
    assert report["energy_kept"] > 0.95
    k = 10
    kept = _overlap(_neighbours(embeddings, k), _neighbours(projected, k))
    random_map = torch.randn(64, 16, generator=gen) / 4
    baseline = _overlap(_neighbours(embeddings, k), _neighbours(embeddings @ random_map, k))
    assert kept > 0.9 and kept > baseline + 0.1
    # wider than the source: every dot product is kept exactly
    wide, _, wide_report = project_embeddings(embeddings, 80)
    assert wide_report["method"] == "orthonormal-embedding"
    assert torch.allclose(wide @ wide.T, embeddings @ embeddings.T, atol=1e-3)


# ---------------------------------------------------------------------- loss terms
def test_masked_lm_loss_is_label_smoothed_cross_entropy():
    logits, labels = torch.randn(5, 11), torch.tensor([1, 2, 3, 4, 5])
    assert torch.allclose(
        masked_lm_loss(logits, labels, 0.1), F.cross_entropy(logits, labels, label_smoothing=0.1)
    )
    empty = torch.randn(0, 11, requires_grad=True)
    loss = masked_lm_loss(empty, torch.zeros(0, dtype=torch.long))
    assert loss.item() == 0.0 and loss.requires_grad


def test_logit_distillation_is_temperature_scaled_kl():
    student, teacher = torch.randn(6, 20), torch.randn(6, 20)
    assert logit_distillation_loss(teacher, teacher, 2.0).abs() < 1e-6
    expected = (
        F.kl_div(
            F.log_softmax(student / 2, -1),
            F.log_softmax(teacher / 2, -1),
            log_target=True,
            reduction="batchmean",
        )
        * 4
    )
    assert torch.allclose(logit_distillation_loss(student, teacher, 2.0), expected, atol=1e-5)
    assert logit_distillation_loss(student, teacher, 2.0) > 0
    with pytest.raises(ValueError, match="vocabulary"):
        logit_distillation_loss(torch.randn(2, 5), torch.randn(2, 6))


def test_hidden_distillation_is_scale_free_and_ignores_padding():
    teacher = torch.randn(2, 5, 8)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    assert hidden_distillation_loss(teacher * 3.0, teacher, mask).abs() < 1e-5  # same directions: zero
    student = torch.randn(2, 5, 8)
    padded_differently = student.clone()
    padded_differently[0, 3:] = 100 * torch.randn(2, 8)  # only padding positions change
    loss = hidden_distillation_loss(student, teacher, mask)
    assert 0 < float(loss) < 2
    assert torch.isclose(loss, hidden_distillation_loss(padded_differently, teacher, mask), atol=1e-6)
    token_only = hidden_distillation_loss(student, teacher, mask, token_weight=1.0)
    pooled_only = hidden_distillation_loss(student, teacher, mask, token_weight=0.0)
    assert torch.isclose(loss, (token_only + pooled_only) / 2)


def test_hidden_distillation_targets_are_centred():
    """Against an anisotropic teacher, predicting its average state must not look like distillation."""
    common = 5 * torch.randn(8)
    teacher = common + torch.randn(4, 6, 8)
    mask = torch.ones(4, 6, dtype=torch.long)
    token_mean, pooled_mean = teacher.mean((0, 1)), teacher.mean(1).mean(0)
    lazy = common.expand(4, 6, 8)  # the same vector for every token of every sentence
    raw = hidden_distillation_loss(lazy, teacher, mask)
    centred = hidden_distillation_loss(
        lazy, teacher, mask, teacher_token_mean=token_mean, teacher_pooled_mean=pooled_mean
    )
    assert raw < 0.1 and centred > 0.8
    exact = hidden_distillation_loss(
        teacher - token_mean, teacher, mask, token_weight=1.0, teacher_token_mean=token_mean
    )
    assert exact.abs() < 1e-5


def test_objective_weights_and_signs():
    mlm, kd, adv = torch.tensor(2.0), torch.tensor(3.0), torch.tensor(5.0)
    total = training_objective(mlm, kd, adv, adv, mlm_weight=0.5, kd_weight=0.4, adversarial_weight=0.1)
    assert torch.isclose(total, torch.tensor(0.5 * 2 + 0.4 * 3 - 0.1 * 5 + 5))
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    assert torch.isclose(
        discriminator_loss(logits, torch.tensor([0, 1])), F.cross_entropy(logits, torch.tensor([0, 1]))
    )


def _batch(tokenizer, lines_by_lang: dict[str, list[str]], languages: list[str]) -> dict[str, torch.Tensor]:
    features = [
        {"input_ids": ids, "language": languages.index(lang)}
        for lang, lines in lines_by_lang.items()
        for ids in tokenizer(lines)["input_ids"]
    ]
    return DistillCollator(tokenizer, 0.3)(features)


def test_adversarial_gradients_are_reversed_for_the_encoder_only(tiny_xlmr_dir):
    """The encoder descends -lambda * L_adv (ascends L_adv); the discriminator descends L_adv."""
    teacher = load_teacher(tiny_xlmr_dir)
    config = tiny_config(mlm_weight=0.5, kd_weight=0.0, adversarial_weight=0.1)
    student, basis, _ = build_student(teacher, config.student)
    model = DistillationModel(student, teacher.model, config, languages=["en", "xx"], kd_mode="logits")
    model.eval()  # no dropout: both passes below see the same network
    batch = _batch(teacher.tokenizer, {"en": tiny_corpus(4, "en"), "xx": tiny_corpus(4, "xx")}, ["en", "xx"])
    encoder_params = [p for n, p in model.student.named_parameters() if "layer.0" in n]
    disc_params = list(model.discriminator.parameters())

    def grads(loss):
        params = encoder_params + disc_params
        return torch.autograd.grad(loss, params, allow_unused=True, retain_graph=True)

    out = model(**batch)
    total = grads(out["loss"] - config.mlm_weight * out["mlm"])  # the adversarial part of the objective
    # reference: the plain discriminator loss with everything attached
    hidden = model.student.base_model(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
    ).last_hidden_state
    plain = discriminator_loss(
        model.discriminator(mean_pool(hidden, batch["attention_mask"])), batch["language"]
    )
    reference = grads(plain)
    assert torch.isclose(out["adv"], plain, atol=1e-6)
    n_enc = len(encoder_params)
    for got, ref in zip(total[:n_enc], reference[:n_enc], strict=True):
        assert torch.allclose(got, -0.1 * ref, atol=1e-7), "encoder must get -lambda * dL_adv"
    assert any(ref.abs().sum() > 0 for ref in reference[:n_enc])
    for got, ref in zip(total[n_enc:], reference[n_enc:], strict=True):
        assert torch.allclose(got, ref, atol=1e-6), "discriminator must get +dL_adv, unscaled"
    # and the MLM term reaches the encoder with its weight
    mlm_grad = torch.autograd.grad(out["mlm"], encoder_params[0], retain_graph=True)[0]
    full = torch.autograd.grad(out["loss"], encoder_params[0], retain_graph=True)[0]
    assert torch.allclose(full, 0.5 * mlm_grad + total[0], atol=1e-6)


def test_forward_combines_the_papers_terms(tiny_xlmr_dir):
    """0.5 * label-smoothed MLM - 0.1 * L_adv + 0.4 * KD(T=2), each term as the model computes it."""
    teacher = load_teacher(tiny_xlmr_dir)
    config = tiny_config()  # the paper's weights
    student, _, _ = build_student(teacher, config.student)
    model = DistillationModel(student, teacher.model, config, languages=["en", "xx"], kd_mode="logits").eval()
    batch = _batch(teacher.tokenizer, {"en": tiny_corpus(5, "en"), "xx": tiny_corpus(5, "xx")}, ["en", "xx"])
    out = model(**batch)
    masked = batch["labels"] != -100
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    with torch.no_grad():
        s_logits = student(**inputs).logits[masked]
        t_logits = teacher.model(**inputs).logits[masked]
        pooled = mean_pool(student.base_model(**inputs).last_hidden_state, batch["attention_mask"])
    labels = batch["labels"][masked]
    assert torch.isclose(out["mlm"], F.cross_entropy(s_logits, labels, label_smoothing=0.1), atol=1e-5)
    assert not torch.isclose(out["mlm"], F.cross_entropy(s_logits, labels), atol=1e-4)  # smoothing is on
    assert torch.isclose(out["kd"], logit_distillation_loss(s_logits, t_logits, 2.0), atol=1e-5)
    assert torch.isclose(
        out["adv"], F.cross_entropy(model.discriminator(pooled), batch["language"]), atol=1e-5
    )
    expected = 0.5 * out["mlm"] - 0.1 * out["adv"] + 0.4 * out["kd"]
    assert torch.isclose(out["encoder_loss"], expected, atol=1e-6)
    # the optimised scalar adds the discriminator's own (un-reversed) loss on detached features
    assert torch.isclose(out["loss"], expected + out["adv"], atol=1e-6)
    assert 0.0 <= float(out["adv_accuracy"]) <= 1.0


def test_kd_paths(tiny_xlmr_dir, headless_teacher):
    with_head, without = load_teacher(tiny_xlmr_dir), load_teacher(headless_teacher)
    assert with_head.has_mlm_head and not without.has_mlm_head
    config = tiny_config(adversarial_weight=0.0)
    # logits: the KD term is exactly the temperature-scaled KL on the masked positions
    student, _, _ = build_student(with_head, config.student)
    model = DistillationModel(student, with_head.model, config, languages=["en"], kd_mode="logits").eval()
    batch = _batch(with_head.tokenizer, {"en": tiny_corpus(6, "en")}, ["en"])
    out = model(**batch)
    masked = batch["labels"] != -100
    with torch.no_grad():
        s_logits = student(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[
            masked
        ]
        t_logits = with_head.model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        ).logits[masked]
    assert torch.isclose(out["kd"], logit_distillation_loss(s_logits, t_logits, 2.0), atol=1e-5)
    assert model.projection is None and model.discriminator is None
    # hidden: a projection student -> teacher width, initialised with the SVD basis
    student, basis, _ = build_student(without, config.student)
    model = DistillationModel(
        student, without.model, config, languages=["en"], kd_mode="hidden", projection_init=basis
    ).eval()
    assert model.projection.weight.shape == (32, 16) and torch.allclose(model.projection.weight, basis)
    batch = _batch(without.tokenizer, {"en": tiny_corpus(6, "en")}, ["en"])
    report = model.calibrate([batch])
    teacher_states = model.teacher_forward(batch["input_ids"], batch["attention_mask"])
    assert torch.allclose(
        model.teacher_pooled_mean, mean_pool(teacher_states, batch["attention_mask"]).mean(0)
    )
    assert report["sentences"] == 6 and "teacher_pooled_mean" in model.state_dict()
    out = model(**batch)
    assert 0 < out["kd"].item() < 2
    grad = torch.autograd.grad(out["kd"], model.projection.weight)[0]
    assert grad.abs().sum() > 0


# ---------------------------------------------------------------------- corpus and sampling
def test_language_sampling_exponent():
    counts = {"en": 10000, "gn": 100}
    p = sampling_probabilities(counts, 0.3)
    assert p["en"] == pytest.approx(10000**0.3 / (10000**0.3 + 100**0.3))
    assert sampling_probabilities(counts, 0.0) == {"en": 0.5, "gn": 0.5}
    assert sampling_probabilities(counts, 1.0)["gn"] == pytest.approx(100 / 10100)
    assert sum(allocate(p, 1001).values()) == 1001
    draws = balanced_sample(counts, 0.3, 1000, seed=1)
    n_gn = sum(lang == "gn" for lang, _ in draws)
    assert abs(n_gn - round(1000 * p["gn"])) <= 1
    gn_lines = [i for lang, i in draws if lang == "gn"]
    assert len(set(gn_lines)) == 100  # a small language is repeated evenly: every line is used
    assert draws == balanced_sample(counts, 0.3, 1000, seed=1)


def test_corpus_specs(tmp_path, corpus_files):
    parsed = parse_corpus_specs(
        [f"en={corpus_files['en']}", f"xx={corpus_files['xx']}", f"en={corpus_files['xx']}"]
    )
    assert parsed == {"en": [corpus_files["en"], corpus_files["xx"]], "xx": [corpus_files["xx"]]}
    with pytest.raises(CrosslingError, match="LANG=PATH"):
        parse_corpus_specs([str(corpus_files["en"])])
    with pytest.raises(CrosslingError, match="does not exist"):
        parse_corpus_specs([f"en={tmp_path / 'missing.txt'}"])
    with pytest.raises(CrosslingError, match="language code"):
        parse_corpus_specs([f"e n={corpus_files['en']}"])


def test_masking_is_berts_and_seeded(tiny_xlmr_dir):
    tokenizer = load_teacher(tiny_xlmr_dir).tokenizer
    ids = tokenizer(tiny_corpus(64, "en"))["input_ids"]
    features = [{"input_ids": x, "language": 0, "index": i} for i, x in enumerate(ids)]
    collator = DistillCollator(tokenizer, 0.15, seed=3)
    batch = collator(features)
    chosen = batch["labels"] != -100
    special = torch.isin(batch["labels"], torch.tensor(tokenizer.all_special_ids))
    assert not special.any(), "special tokens and padding are never masked"
    real = batch["attention_mask"].sum() - 2 * len(ids)
    assert 0.08 < chosen.sum() / real < 0.22
    assert (batch["input_ids"][chosen] == tokenizer.mask_token_id).float().mean() > 0.6
    again = collator(features)
    assert torch.equal(batch["input_ids"], again["input_ids"]), "same batch, same seed: same masks"
    assert not torch.equal(batch["labels"], DistillCollator(tokenizer, 0.15, seed=4)(features)["labels"])


# ---------------------------------------------------------------------- end to end
def test_cli_writes_a_hugging_face_student(cli_student, tiny_xlmr_dir):
    from transformers import AutoModel, AutoModelForMaskedLM, AutoTokenizer

    student_dir, printed = cli_student
    assert "Distilled student" in printed and "0.5*MLM - 0.1*L_adv + 0.4*KD" in printed
    model, info = AutoModelForMaskedLM.from_pretrained(student_dir, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert AutoModel.from_pretrained(student_dir).config.hidden_size == 16
    tokenizer = AutoTokenizer.from_pretrained(student_dir)
    assert tokenizer.get_vocab() == AutoTokenizer.from_pretrained(tiny_xlmr_dir).get_vocab()
    assert not list(student_dir.rglob("*.bin")) and (student_dir / "model.safetensors").is_file()
    meta = DistilledStudent.from_pretrained(student_dir).metadata
    assert meta["objective"]["encoder_loss"] == "0.5*MLM - 0.1*L_adv + 0.4*KD"
    assert meta["objective"]["kd"]["mode"] == "logits" and meta["teacher"]["mlm_head"]
    assert meta["training"]["steps"] == 4 and meta["languages"] == ["en", "xx"]
    assert meta["corpus"]["en"]["cleaning"]["total"] == 160 and meta["corpus"]["xx"]["eval_lines"] == 6
    assert set(meta["eval"]["per_language"]) == {"en", "xx"}
    assert "torch" in meta["versions"] and meta["size_on_disk_bytes"] > 0
    # language-balanced sampling with the default exponent 0.3 over the encoded training lines
    n = {lang: c["sentences_encoded"] for lang, c in meta["corpus"].items()}
    p_xx = n["xx"] ** 0.3 / (n["en"] ** 0.3 + n["xx"] ** 0.3)
    assert meta["corpus"]["xx"]["sampling_probability"] == pytest.approx(p_xx, abs=1e-4)
    drawn = {lang: c["examples_drawn"] for lang, c in meta["corpus"].items()}
    assert abs(drawn["xx"] - p_xx * sum(drawn.values())) <= 1
    assert p_xx > n["xx"] / (n["en"] + n["xx"]), "the small language is up-sampled"
    assert not (student_dir.parent / "xxs.work").exists(), "a finished run cleans its work directory"


def test_student_is_accepted_by_build_adaptable_model(student_dir):
    from crossling.language import build_adaptable_model

    adaptable = build_adaptable_model(student_dir, "xx")
    model = adaptable.model
    assert not adaptable.fresh_mlm_head, "the student brings its trained MLM head"
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    batch = adaptable.tokenizer(["Mama asoma kitabu."], return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape[-1] == model.config.vocab_size and torch.isfinite(logits).all()


def test_student_is_accepted_as_adapt_base(student_dir, tmp_path, corpus_files):
    from crossling.adapt import AdaptOptions, adapt

    options = AdaptOptions(
        corpus=corpus_files["xx"],
        vocab="base",
        training=TrainingConfig.load("smoke", max_steps=2),
        eval_lines=5,
        progress=False,
    )
    pack = adapt("xx", student_dir, tmp_path / "pack", options)
    assert pack.reports["training"]["steps"] == 2
    assert pack.encode(["Mama asoma kitabu."]).shape == (1, 16)


def test_headless_teacher_uses_hidden_distillation(tmp_path, headless_teacher, corpus_files):
    student = distill(
        headless_teacher,
        corpus_files,
        tmp_path / "s",
        config=tiny_config(),
        training=smoke(max_steps=2),
        progress=False,
    )
    assert student.metadata["objective"]["kd"]["mode"] == "hidden"
    with pytest.raises(CrosslingError, match="no MLM head"):
        distill(
            headless_teacher,
            corpus_files,
            tmp_path / "t",
            config=tiny_config(kd_mode="logits"),
            training=smoke(),
            progress=False,
        )


def test_untied_student_end_to_end(tmp_path, tiny_xlmr_dir, corpus_files):
    from transformers import AutoModelForMaskedLM

    from crossling.language import build_adaptable_model

    student = distill(
        tiny_xlmr_dir,
        corpus_files,
        tmp_path / "s",
        config=tiny_config(tie_decoder=False),
        training=smoke(max_steps=2),
        progress=False,
    )
    assert student.metadata["student"]["decoder"] == "untied"
    model, info = AutoModelForMaskedLM.from_pretrained(student.path, output_loading_info=True)
    assert not info["missing_keys"] and not model.config.tie_word_embeddings
    inputs, outputs = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    assert inputs is not outputs and not torch.equal(inputs, outputs), "the decoder trained on its own"
    weights = _weights(student.path)
    assert torch.equal(weights["cls.predictions.decoder.weight"], outputs)
    adaptable = build_adaptable_model(student.path, "xx")  # same vocabulary: the decoder is kept
    assert torch.equal(adaptable.model.get_output_embeddings().weight, outputs)


def test_loss_falls(tmp_path, tiny_xlmr_dir, corpus_files):
    student = distill(
        tiny_xlmr_dir,
        corpus_files,
        tmp_path / "s",
        config=tiny_config(),
        training=smoke(max_steps=40, save_steps=10, learning_rate=3e-3, warmup_ratio=0.0),
        progress=False,
    )
    history = student.metadata["training"]["history"]
    assert len(history) == 4
    assert history[-1]["mlm"] < history[0]["mlm"] - 0.3


def _weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(path / "model.safetensors")


def test_resume_after_interruption_and_determinism(tmp_path, tiny_xlmr_dir, corpus_files):
    from transformers import TrainerCallback

    class Interrupt(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3:
                raise KeyboardInterrupt

    run = {"config": tiny_config(), "training": smoke(max_steps=4, save_steps=2), "progress": False}
    with pytest.raises(KeyboardInterrupt):
        distill(tiny_xlmr_dir, corpus_files, tmp_path / "a", callbacks=[Interrupt()], **run)
    assert not (tmp_path / "a").exists(), "an interrupted run must not leave a student"
    assert (tmp_path / "a.work" / "checkpoints" / "checkpoint-2").is_dir()
    # rerunning without --resume would throw the checkpoints away: refused
    with pytest.raises(CrosslingError, match="--resume"):
        distill(tiny_xlmr_dir, corpus_files, tmp_path / "a", **run)
    # resuming under other settings would mix two runs: refused, naming what changed
    with pytest.raises(CrosslingError, match="config.kd_weight"):
        distill(
            tiny_xlmr_dir,
            corpus_files,
            tmp_path / "a",
            resume=True,
            **{**run, "config": tiny_config(kd_weight=0.3)},
        )
    resumed = distill(tiny_xlmr_dir, corpus_files, tmp_path / "a", resume=True, **run)
    assert resumed.metadata["training"]["resumed_from"] == "checkpoint-2"
    assert resumed.metadata["training"]["steps"] == 4
    assert not (tmp_path / "a.work").exists(), "checkpoints are dropped once the student is written"

    straight = distill(tiny_xlmr_dir, corpus_files, tmp_path / "b", **run)
    distill(tiny_xlmr_dir, corpus_files, tmp_path / "c", **run)
    a, b, c = _weights(tmp_path / "a"), _weights(tmp_path / "b"), _weights(tmp_path / "c")
    assert all(torch.equal(b[k], c[k]) for k in b), "same seed, same student"
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in b), "resuming gives the uninterrupted result"
    other = distill(
        tiny_xlmr_dir,
        corpus_files,
        tmp_path / "d",
        **{**run, "training": smoke(max_steps=4, save_steps=2, seed=7)},
    )
    d = _weights(tmp_path / "d")
    assert not all(torch.equal(b[k], d[k]) for k in b)
    assert json.loads((tmp_path / "b" / "crossling.json").read_text())["training"]["seed"] == 42
    assert straight.metadata["training"]["resumed_from"] is None and other.metadata["training"]["seed"] == 7


def test_bad_input_is_a_clear_error(tmp_path, tiny_xlmr_dir, corpus_files, capsys):
    base = ["distill", "--teacher", str(tiny_xlmr_dir), "--out", str(tmp_path / "s"), "--budget", "smoke"]
    assert main([*base, "--corpus", f"en={corpus_files['en']}"]) == 1
    assert "at least two languages" in capsys.readouterr().err
    assert main([*base, "--corpus", str(corpus_files["en"])]) == 1
    assert "expected LANG=PATH" in capsys.readouterr().err
    assert main([*base, "--corpus", f"en={corpus_files['en']}", f"xx={tmp_path / 'nope.txt'}"]) == 1
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*base, "--corpus", f"en={corpus_files['en']}", "--size", "huge"])
    assert "invalid choice" in capsys.readouterr().err
    two = ["--corpus", f"en={corpus_files['en']}", f"xx={corpus_files['xx']}"]
    for extra, message in (
        (["--preset", "nope"], "unknown preset"),
        (["--mlm-probability", "2"], "mlm_probability: 2.0 is outside"),
        (["--hidden", "30", "--heads", "4"], "not divisible"),
        (["--kd-mode", "logits", "--kd-weight", "0", "--mlm-weight", "0"], "nothing would train"),
    ):
        assert main([*base, *two, *extra]) == 1
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    missing = ["distill", "--teacher", str(tmp_path / "no-teacher"), "--out", str(tmp_path / "s"), *two]
    assert main(missing) == 1
    err = capsys.readouterr().err
    assert "cannot load" in err and len(err.strip().splitlines()) == 1
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert main([*base[:3], "--out", str(foreign), *two]) == 1
    assert "not a distilled student" in capsys.readouterr().err and (foreign / "notes.txt").is_file()
    assert not (tmp_path / "s").exists() and not (tmp_path / "s.work").exists()
    # one language is fine once the adversarial term is off
    single = distill(
        tiny_xlmr_dir,
        {"en": corpus_files["en"]},
        tmp_path / "single",
        config=tiny_config(adversarial_weight=0.0),
        training=smoke(max_steps=2),
        progress=False,
    )
    assert single.metadata["objective"]["adversarial"] is None
    assert single.metadata["objective"]["encoder_loss"] == "0.5*MLM + 0.4*KD"


def test_discriminator_learning_rate_multiplier(tmp_path, tiny_xlmr_dir, corpus_files):
    from transformers import TrainerCallback

    seen = {}

    class Record(TrainerCallback):
        def on_step_end(self, args, state, control, optimizer=None, model=None, **kwargs):
            if state.global_step != 1:
                return
            disc = {id(p) for p in model.discriminator.parameters()}
            for group in optimizer.param_groups:
                kind = "disc" if id(group["params"][0]) in disc else "enc"
                assert all((id(p) in disc) == (kind == "disc") for p in group["params"])
                seen.setdefault(kind, set()).add(round(group["lr"] / args.learning_rate, 6))

    distill(
        tiny_xlmr_dir,
        corpus_files,
        tmp_path / "s",
        config=tiny_config(discriminator_lr_multiplier=10.0),
        training=smoke(max_steps=2, warmup_ratio=0.0),
        progress=False,
        callbacks=[Record()],
    )
    # linear decay: after step 1 of 2 every group is at half its own peak
    assert seen == {"enc": {0.5}, "disc": {5.0}}


def test_cli_interruption_points_to_resume(monkeypatch, tmp_path, tiny_xlmr_dir, corpus_files, capsys):
    import crossling.distill.pipeline as pipeline

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "distill", interrupted)
    args = ["distill", "--teacher", str(tiny_xlmr_dir), "--out", str(tmp_path / "s"), "--budget", "smoke"]
    args += ["--corpus", *(f"{lang}={path}" for lang, path in corpus_files.items())]
    assert main(args) == 130
    err = capsys.readouterr().err
    assert "same command with --resume" in err and "every 10 steps" in err and "Traceback" not in err


def test_help_explains_every_option(capsys):
    import argparse

    from crossling.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    distill_parser = sub.choices["distill"]
    for action in distill_parser._actions:
        assert action.help and action.help != argparse.SUPPRESS, f"{action.option_strings} has no help"
    with pytest.raises(SystemExit) as exit_info:
        main(["distill", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--teacher", "--size", "--corpus", "--untie-decoder", "--resume", "--sampling-alpha"):
        assert option in text
    assert "torchrun" in text and "--base" in text


@pytest.mark.slow  # two fresh interpreters: ~20 s on the shared CPU; run with `pytest -m slow`
def test_torchrun_two_processes(tmp_path, tiny_xlmr_dir, corpus_files):
    import os
    import subprocess
    import sys

    out = tmp_path / "s"
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29547",
    ]
    args = [
        "distill",
        "--teacher",
        str(tiny_xlmr_dir),
        "--out",
        str(out),
        "--budget",
        "smoke",
        "--max-steps",
        "4",
    ]
    args += ["--corpus", *(f"{lang}={path}" for lang, path in corpus_files.items())]
    args += ["--layers", "1", "--hidden", "16", "--heads", "2", "--eval-lines", "10"]
    result = subprocess.run(
        [*torchrun, "-m", "crossling", *args], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    meta = DistilledStudent.from_pretrained(out).metadata
    assert meta["training"]["processes"] == 2 and meta["training"]["steps"] == 4
    assert result.stdout.count("Distilled student") == 1  # only the main process reports


def test_hidden_distillation_loss_in_bf16_averages_over_every_token():
    torch.manual_seed(0)
    student, teacher = torch.randn(1, 5000, 4), torch.randn(1, 5000, 4)
    mask = torch.ones(1, 5000, dtype=torch.long)
    exact = hidden_distillation_loss(student, teacher, mask, token_weight=1.0)
    # bf16 rounds the states (a small change of each cosine), but not the count of tokens
    rounded = hidden_distillation_loss(student.bfloat16().float(), teacher, mask, token_weight=1.0)
    assert float(
        hidden_distillation_loss(student.bfloat16(), teacher, mask, token_weight=1.0)
    ) == pytest.approx(float(rounded), rel=1e-6)
    assert float(rounded) == pytest.approx(float(exact), rel=1e-2)
