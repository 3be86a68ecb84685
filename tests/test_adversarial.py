import pytest
import torch
from test_tasks_support import FAST

from crossling.adversarial import (
    AdversarialData,
    LanguageDiscriminator,
    discriminator_update,
    generator_loss,
    generator_update,
    grad_reverse,
    grl_objective,
    loss_reversal_objective,
)
from crossling.errors import CrosslingError
from crossling.tasks import build_pack_model, collate, encode_sentences, train_task
from crossling.tasks.model import add_head, task_adapter_config
from crossling.tasks.training import TaskTrainingModule
from crossling.testing import tiny_corpus

# shared fixtures (tiny packs, toy data, a trained NER adapter)
pytest_plugins = ["test_tasks_support"]
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_gradient_reversal_layer_flips_and_scales_the_gradient():
    x = torch.randn(3, 4, requires_grad=True)
    y = grad_reverse(x, 0.5)
    assert torch.equal(y, x)
    (y * torch.arange(4.0)).sum().backward()
    assert torch.allclose(x.grad, -0.5 * torch.arange(4.0).expand(3, 4))


def _grads(term, features, discriminator):
    params = list(discriminator.parameters())
    grads = torch.autograd.grad(term, [features, *params])
    return grads[0], grads[1:]


def test_loss_reversal_sign_and_equivalence_with_grl():
    torch.manual_seed(0)
    disc = LanguageDiscriminator(8, 3)
    disc.eval()  # no dropout: the three passes below must see the same function
    features = torch.randn(6, 8, requires_grad=True)
    languages = torch.tensor([0, 1, 2, 0, 1, 2])
    weight = 0.3
    # reference: dL_D/dh and dL_D/dtheta of the plain discriminator loss
    plain = torch.nn.functional.cross_entropy(disc(features), languages)
    ref_f, ref_d = _grads(plain, features, disc)
    term, d_loss = loss_reversal_objective(disc, features, languages, weight)
    got_f, got_d = _grads(term, features, disc)
    # the encoder sees task - lambda * L_D: the features' gradient is -lambda dL_D/dh ...
    assert torch.allclose(got_f, -weight * ref_f, atol=1e-6)
    # ... while the discriminator still descends its own loss
    for g, r in zip(got_d, ref_d, strict=True):
        assert torch.allclose(g, r, atol=1e-6)
    assert torch.allclose(d_loss, plain)
    grl_term, _ = grl_objective(disc, features, languages, weight)
    grl_f, grl_d = _grads(grl_term, features, disc)
    assert torch.allclose(grl_f, got_f, atol=1e-6)
    for g, r in zip(grl_d, got_d, strict=True):
        assert torch.allclose(g, r, atol=1e-6)


def test_generator_loss_flips_binary_labels_and_aims_at_uniform_otherwise():
    logits = torch.tensor([[3.0, -3.0], [-3.0, 3.0]])
    languages = torch.tensor([0, 1])
    # D is right on both, so the flipped-label loss is large
    assert float(generator_loss(logits, languages)) > 5
    assert float(generator_loss(logits, 1 - languages)) < 0.01
    uniform = torch.zeros(2, 3)
    assert float(generator_loss(uniform, torch.tensor([0, 2]))) == pytest.approx(
        torch.log(torch.tensor(3.0)).item()
    )


def test_adversarial_batches_are_deterministic_and_labelled_by_class_scheme():
    pools = [[{"input_ids": [0, i, 2], "attention_mask": [1, 1, 1]} for i in range(5)] for _ in range(3)]
    binary = AdversarialData(["en", "de", "sw"], pools, "binary", batch_size=8, seed=1)
    feats, langs = binary.batch(7)
    assert binary.batch(7)[0] == feats and torch.equal(binary.batch(7)[1], langs)
    assert langs.tolist()[:4] == [0] * 4 and set(langs.tolist()[4:]) == {1}
    multi = AdversarialData(["en", "de", "sw"], pools, "languages", batch_size=64, seed=1)
    assert set(multi.batch(0)[1].tolist()) == {0, 1, 2} and multi.num_classes == 3
    with pytest.raises(CrosslingError, match="at least one language besides"):
        AdversarialData(["en"], pools[:1], "binary", batch_size=4)


def test_keung_phases_update_only_what_the_paper_says(en_pack):
    """Step 1 changes the discriminator only; step 2 the encoder-side trainable parameters (the
    task adapter) only; neither touches the head, the language adapter or the frozen base."""
    from adapters.composition import Stack

    torch.manual_seed(0)
    packed = build_pack_model(en_pack)
    model = packed.model
    model.add_adapter("ner_en", config=task_adapter_config(16))
    add_head(model, "ner_en", "ner", ["O", "B-PER"])
    model.train_adapter("ner_en")
    model.set_active_adapters(Stack("en", "ner_en"))
    disc = LanguageDiscriminator(model.config.hidden_size, 2)
    module = TaskTrainingModule(model, disc, "keung")
    generator = [p for p in model.base_model.parameters() if p.requires_grad]
    sentences = [s.split() for s in tiny_corpus(8, "en")] + [s.split() for s in tiny_corpus(8, "xx")]
    batch = collate(encode_sentences(packed.tokenizer, sentences, 32).features, packed.tokenizer.pad_token_id)
    languages = torch.tensor([0] * 8 + [1] * 8)

    def encode(b):
        return module.pooled(b["input_ids"], b["attention_mask"])

    def snapshot():
        return {n: p.detach().clone() for n, p in module.named_parameters()}

    def changed(before):
        return {n for n, p in module.named_parameters() if not torch.equal(before[n], p)}

    module.train()
    before = snapshot()
    discriminator_update(encode, disc, torch.optim.AdamW(disc.parameters(), lr=1e-2), batch, languages)
    assert changed(before) == {n for n, _ in module.named_parameters() if n.startswith("discriminator.")}

    before = snapshot()
    generator_update(encode, disc, generator, torch.optim.AdamW(generator, lr=1e-2), batch, languages)
    moved = changed(before)
    generator_names = {n for n, p in module.named_parameters() if any(p is g for g in generator)}
    assert moved and moved <= generator_names
    assert all(".adapters.ner_en." in n for n in moved)
    assert not any(n.startswith(("discriminator.", "model.heads.")) for n in moved)


@pytest.mark.parametrize("method", ["keung", "grl", "loss-reversal"])
def test_each_adversarial_method_trains_a_few_steps(method, en_pack, ner_files, tmp_path):
    adapter, model = train_task(
        "ner",
        ner_files["train"],
        tmp_path / method,
        pack=en_pack,
        config={"adversarial": method},
        training=FAST.replace(max_steps=4, save_steps=2),
        unlabelled={"xx": ner_files["unlabelled_xx"]},
        progress=False,
        return_model=True,
    )
    # the discriminator and the adversarial updates leave the base and the language adapter alone
    fresh = build_pack_model(en_pack).model.state_dict()
    trained = model.model.state_dict()
    for name, value in fresh.items():
        if ".pooler." not in name:
            assert torch.equal(value, trained[name]), f"{method} changed {name}"
    history = adapter.config["summary"]["history"]
    assert history and all("disc_loss" in h for h in history)
    assert all(("gen_loss" in h) == (method == "keung") for h in history)
    report = adapter.config["adversarial"]
    assert report["languages"] == ["en", "xx"]
    assert report["classes"] == ("binary" if method == "keung" else "languages")
    assert not list((tmp_path / f"{method}.work").rglob("*.bin"))


def test_keung_resumes_with_its_own_optimisers(en_pack, ner_files, tmp_path):
    kwargs = dict(
        pack=en_pack,
        config={"adversarial": "keung"},
        training=FAST.replace(max_steps=4, save_steps=2),
        unlabelled={"xx": ner_files["unlabelled_xx"]},
        progress=False,
    )
    train_task("ner", ner_files["train"], tmp_path / "k", **kwargs)
    checkpoint = tmp_path / "k.work" / "checkpoints" / "checkpoint-4"
    assert (checkpoint / "adversarial_optimizers.pt").is_file()
    kwargs["training"] = FAST.replace(max_steps=6, save_steps=2)
    adapter = train_task("ner", ner_files["train"], tmp_path / "k", resume=True, **kwargs)
    assert adapter.config["summary"]["resumed_from"] == "checkpoint-4"
