import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModel

from crossling.artifacts import LanguagePack
from crossling.config import LanguageAdapterConfig, TrainingConfig
from crossling.errors import ArtifactError
from crossling.language import (
    build_adaptable_model,
    evaluate_mlm,
    freeze_for_language_training,
    hidden_state_kl,
    load_pack_model,
    mean_pool,
    measure_kl,
    save_language_pack,
    train_language_adapter,
)
from crossling.testing import tiny_corpus, tiny_xlmr

TRAIN = tiny_corpus(400, "xx")
HELD_OUT = tiny_corpus(60, "xx", seed=9)
FAST = TrainingConfig(max_steps=40, batch_size=16, learning_rate=5e-3, save_steps=20)


def test_kl_is_zero_for_identical_states_and_positive_otherwise():
    torch.manual_seed(0)
    h = torch.randn(2, 5, 8)
    mask = torch.ones(2, 5)
    assert float(hidden_state_kl(h, h, mask)) == pytest.approx(0.0, abs=1e-7)
    assert float(hidden_state_kl(h, h + torch.randn_like(h), mask)) > 0


def test_kl_matches_definition_and_ignores_padding():
    torch.manual_seed(0)
    ref, ada = torch.randn(2, 4, 6), torch.randn(2, 4, 6)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    # per-token KL(p_ref || p_ada) with torch's kl_div(input=log q, target=log p)
    per_token = F.kl_div(
        F.log_softmax(ada / 2, -1), F.log_softmax(ref / 2, -1), log_target=True, reduction="none"
    )
    expected = per_token.sum(-1)[mask.bool()].mean()
    assert torch.allclose(hidden_state_kl(ref, ada, mask, temperature=2.0), expected, atol=1e-6)
    garbage = ada.clone()
    garbage[0, 3] = 1e4  # a pad position: must not matter
    assert torch.allclose(hidden_state_kl(ref, garbage, mask, 2.0), expected, atol=1e-6)


def test_mean_pool_ignores_padding():
    hidden = torch.tensor([[[1.0, 1.0], [3.0, 3.0], [100.0, 100.0]]])
    assert torch.equal(mean_pool(hidden, torch.tensor([[1, 1, 0]])), torch.tensor([[2.0, 2.0]]))


def test_invertible_inverse_runs_before_the_mlm_head(tiny_xlmr_dir):
    adaptable = build_adaptable_model(tiny_xlmr_dir, "xx")
    model = adaptable.model
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "invertible" in name:
                param.add_(torch.randn_like(param))
    enc = adaptable.tokenizer(["Mama asoma kitabu."], return_tensors="pt")
    seen = {}
    model.lm_head.register_forward_pre_hook(lambda _m, args: seen.setdefault("x", args[0]))
    with torch.no_grad():
        out = model(**enc, output_hidden_states=True)
    inverse = model.base_model.invertible_adapters_forward(out.hidden_states[-1], rev=True)
    assert torch.allclose(seen["x"], inverse) and not torch.allclose(seen["x"], out.hidden_states[-1])


def test_only_adapter_embeddings_and_head_bias_are_trainable(tiny_xlmr_dir):
    adaptable = build_adaptable_model(tiny_xlmr_dir, "xx")
    trainable = freeze_for_language_training(adaptable, LanguageAdapterConfig())
    others = [n for n in trainable if ".adapters." not in n and "invertible_adapters" not in n]
    assert sorted(others) == ["lm_head.bias", "roberta.embeddings.word_embeddings.weight"]


def test_base_without_mlm_head_gets_a_fresh_trainable_head(tmp_path, tiny_xlmr_dir):
    AutoModel.from_pretrained(tiny_xlmr_dir).save_pretrained(tmp_path / "encoder-only")
    for f in tiny_xlmr_dir.glob("*token*"):
        (tmp_path / "encoder-only" / f.name).write_bytes(f.read_bytes())
    adaptable = build_adaptable_model(tmp_path / "encoder-only", "xx")
    assert adaptable.fresh_mlm_head
    trainable = freeze_for_language_training(adaptable, LanguageAdapterConfig())
    assert "lm_head.dense.weight" in trainable and "lm_head.layer_norm.weight" in trainable
    model = adaptable.model
    assert model.lm_head.decoder.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()


@pytest.fixture(scope="module")
def trained(tiny_xlmr_dir, tmp_path_factory):
    """The same adapter trained with beta=0 and beta=1 (and the untrained model's held-out loss)."""
    runs = {}
    for beta in (0.0, 1.0):
        config = LanguageAdapterConfig(kl_weight=beta)
        adaptable = build_adaptable_model(tiny_xlmr_dir, "xx", config)
        before = {n: p.detach().clone() for n, p in adaptable.model.named_parameters()}
        initial = evaluate_mlm(adaptable.model, adaptable.tokenizer, HELD_OUT)
        summary = train_language_adapter(
            adaptable,
            TRAIN,
            config,
            FAST,
            tmp_path_factory.mktemp(f"work{beta}"),
            eval_lines=HELD_OUT,
            progress=False,
        )
        runs[beta] = (adaptable, before, initial, summary)
    return runs


def test_mlm_loss_falls(trained):
    for _adaptable, _before, initial, summary in trained.values():
        assert summary["steps"] == FAST.max_steps
        assert summary["eval"]["mlm_loss"] < initial["mlm_loss"] - 0.5


def test_kl_term_keeps_representations_closer(trained):
    assert trained[1.0][3]["eval"]["kl"] < 0.5 * trained[0.0][3]["eval"]["kl"]
    assert all("kl" in entry for entry in trained[1.0][3]["history"])


def test_held_out_kl_is_a_token_average_whatever_the_batching(trained):
    """A short last batch must not weigh as much as a full one: the figure is per token."""
    adaptable = trained[0.0][0]
    lines = HELD_OUT[:9] + ["a"]  # a one-token line alone in the last batch of 3
    by_three = measure_kl(adaptable.model, adaptable.tokenizer, lines, batch_size=3)
    assert by_three == pytest.approx(measure_kl(adaptable.model, adaptable.tokenizer, lines, batch_size=10))
    assert by_three > 0


def test_evaluation_batches_go_to_the_device_the_model_is_on():
    from crossling.training_utils import on_model_device

    model = torch.nn.Linear(2, 2, device="meta")  # stands in for a model Trainer left on a GPU
    batch = on_model_device({"input_ids": torch.ones(2, 3, dtype=torch.long), "note": "kept"}, model)
    assert batch["input_ids"].device == torch.device("meta") and batch["note"] == "kept"


def test_base_weights_are_byte_identical_after_training(trained):
    adaptable, before, _initial, _summary = trained[1.0]
    changed = {
        n for n, p in adaptable.model.named_parameters() if n in before and not torch.equal(p, before[n])
    }
    base_changed = {n for n in changed if ".adapters." not in n and "invertible_adapters" not in n}
    assert base_changed == {"roberta.embeddings.word_embeddings.weight", "lm_head.bias"}
    assert any(".adapters." in n for n in changed) and any("invertible_adapters" in n for n in changed)


def test_pack_round_trip_encodes_identically(trained, tmp_path, tiny_xlmr_dir):
    adaptable = trained[1.0][0]
    pack = save_language_pack(adaptable, tmp_path / "xx", language="xx", new_vocabulary=True)
    sentences = HELD_OUT[:5]
    from crossling.language import encode

    expected = encode(adaptable.model, adaptable.tokenizer, sentences)
    loaded = LanguagePack.from_pretrained(pack.path)
    assert loaded.has_own_vocabulary and loaded.reports["mlm_head"] == "base"
    assert torch.allclose(loaded.encode(sentences), expected, atol=1e-5)
    other = tiny_xlmr(tmp_path / "other-base", seed=3)
    with pytest.raises(ArtifactError, match="was built on base model"):
        load_pack_model(loaded, other)


def test_batch_without_masked_tokens_gives_a_finite_loss(tiny_xlmr_dir):
    from crossling.language import mlm_kl_loss

    adaptable = build_adaptable_model(tiny_xlmr_dir, "xx")
    enc = adaptable.tokenizer(["Mama asoma."], return_tensors="pt")
    batch = {**enc, "labels": torch.full_like(enc["input_ids"], -100)}
    loss, _outputs, parts = mlm_kl_loss(adaptable.model, batch, kl_weight=1.0, temperature=1.0)
    assert torch.isfinite(loss) and parts["mlm"] == 0.0


def test_kl_reference_is_deterministic_and_training_mode_is_kept(tiny_xlmr_dir, monkeypatch):
    """The reference is the base encoder without dropout, even while the model trains."""
    import crossling.language as language

    references = []
    real_kl = language.hidden_state_kl

    def recording_kl(reference, adapted, mask, temperature=1.0):
        references.append(reference.clone())
        return real_kl(reference, adapted, mask, temperature)

    monkeypatch.setattr(language, "hidden_state_kl", recording_kl)
    adaptable = build_adaptable_model(tiny_xlmr_dir, "xx")
    model = adaptable.model.train()
    assert model.config.hidden_dropout_prob > 0
    enc = adaptable.tokenizer(TRAIN[:8], return_tensors="pt", padding=True)
    batch = {**enc, "labels": torch.full_like(enc["input_ids"], -100)}
    for seed in (0, 1):
        torch.manual_seed(seed)
        language.mlm_kl_loss(model, batch, kl_weight=1.0, temperature=1.0)
    assert model.training, "the reference pass must restore training mode"
    assert torch.equal(references[0], references[1])  # two dropout masks would differ
    model.eval()
    with torch.no_grad(), language.adapters_disabled(model):
        expected = model.base_model(**enc).last_hidden_state
    assert torch.allclose(references[0], expected, atol=1e-6)


def test_new_vocabulary_resets_padding_index_bias_and_ties_decoder(tmp_path, tiny_bert_dir, toy_corpus):
    """A BERT base (pad 0) with an XLM-R style tokenizer (<s> 0, <pad> 1): <s> must get gradients."""
    from crossling.vocab import train_tokenizer

    tokenizer_dir = train_tokenizer(toy_corpus, 80, tmp_path / "tok")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    assert tokenizer.pad_token_id == 1
    embeddings = torch.randn(len(tokenizer), 32)
    adaptable = build_adaptable_model(tiny_bert_dir, "xx", tokenizer=tokenizer, embeddings=embeddings)
    model = adaptable.model
    assert model.get_input_embeddings().padding_idx == 1
    assert model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    assert torch.count_nonzero(model.cls.predictions.bias) == 0
    freeze_for_language_training(adaptable, LanguageAdapterConfig())
    enc = tokenizer(TRAIN[:4], return_tensors="pt", padding=True)
    model.get_input_embeddings()(enc["input_ids"]).sum().backward()  # the lookup alone (decoder is tied)
    grad = model.get_input_embeddings().weight.grad
    assert grad[tokenizer.bos_token_id].abs().sum() > 0 and grad[tokenizer.pad_token_id].abs().sum() == 0


def test_base_vocabulary_pack_keeps_base_embeddings_frozen(tmp_path, tiny_xlmr_dir, toy_corpus):
    from crossling.adapt import AdaptOptions, adapt

    options = AdaptOptions(
        corpus=toy_corpus, vocab="base", training=TrainingConfig.load("smoke", max_steps=2), progress=False
    )
    pack = adapt("xx", tiny_xlmr_dir, tmp_path / "p", options)
    assert pack.reports["options"]["adapter"]["train_embeddings"] is False
    base = AutoModel.from_pretrained(tiny_xlmr_dir).get_input_embeddings().weight
    assert torch.equal(load_pack_model(pack).model.get_input_embeddings().weight, base)


@pytest.mark.parametrize("adapter", ["unibridge", "madx"])
def test_mlm_loss_at_masked_positions_equals_the_full_heads(tiny_xlmr_dir, adapter):
    """The head runs on the masked positions only, with the same loss as Hugging Face's full-length one
    (MAD-X's invertible adapter included: its inverse still runs before the head)."""
    import crossling.language as language
    from crossling.language import masked_lm_outputs

    config = LanguageAdapterConfig.load(adapter)
    adaptable = build_adaptable_model(tiny_xlmr_dir, "xx", config)
    freeze_for_language_training(adaptable, config)
    model = adaptable.model.eval()
    torch.manual_seed(1)
    with torch.no_grad():  # fresh adapters are near the identity: make them (and the inverse) matter
        for name, param in model.named_parameters():
            if "adapter" in name:
                param.normal_(0, 0.2)
    assert any("invertible" in n for n, _ in model.named_parameters())
    enc = adaptable.tokenizer(TRAIN[:6], return_tensors="pt", padding=True)
    torch.manual_seed(0)
    labels = enc["input_ids"].masked_fill(torch.rand(enc["input_ids"].shape) > 0.3, -100)
    labels[enc["attention_mask"] == 0] = -100
    batch = {**enc, "labels": labels}
    rows = []
    spy = language.mlm_head(model).register_forward_hook(lambda _m, _args, out: rows.append(tuple(out.shape)))
    loss, outputs = masked_lm_outputs(model, batch)
    spy.remove()
    assert rows == [(int((labels != -100).sum()), model.config.vocab_size)], "logits at masked positions only"
    with torch.no_grad():
        reference = model(**batch)
    assert outputs.logits.shape == (int((labels != -100).sum()), model.config.vocab_size)
    assert torch.allclose(loss, reference.loss, atol=1e-5)
    masked = labels != -100
    assert torch.allclose(outputs.logits, reference.logits[masked], atol=1e-4)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters() if p.requires_grad)
    # the selecting hook is gone afterwards, even when the forward pass fails
    hooks = len(language.mlm_head(model)._forward_pre_hooks)

    def fail(*_args):
        raise RuntimeError("boom")

    failing = model.base_model.encoder.layer[0].register_forward_pre_hook(fail)
    with pytest.raises(RuntimeError, match="boom"):
        masked_lm_outputs(model, batch)
    failing.remove()
    assert len(language.mlm_head(model)._forward_pre_hooks) == hooks


def test_a_resumed_run_continues_exactly_as_if_never_stopped(tiny_xlmr_dir, tmp_path):
    """Masks come from a generator keyed on the step, not the global RNG, which Trainer restores only
    after collating the first resumed batch: the resumed run's losses and weights are the same."""
    import shutil

    config = LanguageAdapterConfig(kl_weight=1.0)
    training = TrainingConfig(max_steps=4, batch_size=8, learning_rate=5e-3, save_steps=2)

    def run(work, resume=False):
        adaptable = build_adaptable_model(tiny_xlmr_dir, "xx", config)
        summary = train_language_adapter(
            adaptable, TRAIN[:64], config, training, work, resume=resume, progress=False
        )
        trained = {n: p.detach().clone() for n, p in adaptable.model.named_parameters() if p.requires_grad}
        return summary, trained

    full, full_weights = run(tmp_path / "full")
    (tmp_path / "part" / "checkpoints").mkdir(parents=True)
    shutil.copytree(tmp_path / "full/checkpoints/checkpoint-2", tmp_path / "part/checkpoints/checkpoint-2")
    part, part_weights = run(tmp_path / "part", resume=True)
    assert part["resumed_from"] == "checkpoint-2"
    assert [e["loss"] for e in part["history"] if e["step"] > 2] == [
        e["loss"] for e in full["history"] if e["step"] > 2
    ]
    assert all(torch.equal(full_weights[n], part_weights[n]) for n in full_weights)
