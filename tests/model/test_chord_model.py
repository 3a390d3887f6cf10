"""ChordRecognitionModel: the batch contract, frame outputs, and that it can learn."""

import dataclasses
import inspect
import typing

import pytest
import torch

from chordexp.experiment.schemas import ChordLossConfig, ChordModelConfig
from chordexp.model import ChordRecognitionLoss, ChordRecognitionModel, count_parameters


def small_model(**kw):
    torch.manual_seed(0)
    return ChordRecognitionModel(d_model=32, num_blocks=1, num_heads=2, channels=4, **kw)


def test_default_model_outputs_the_three_heads():
    model = ChordRecognitionModel().eval()
    out = model(torch.randn(2, 44100))
    assert {k: tuple(v.shape) for k, v in out.items()} == {"chord_type": (2, 32), "root": (2, 12), "bass_note": (2, 12)}
    assert 0.9e6 < count_parameters(model) < 1.4e6


def test_clip_logits_are_the_mean_of_frame_logits():
    model = small_model().eval()
    audio = torch.randn(2, 22050)
    frames = model.forward_frames(audio)
    clip = model(audio)
    assert frames["root"].shape[:2] == (2, model.frontend.num_frames(22050))
    for key in clip:
        assert torch.allclose(clip[key], frames[key].mean(dim=1), atol=1e-5)


def test_any_length_of_audio_works():
    model = small_model().eval()
    for n in (4000, 44100, 3 * 44100 + 17):
        assert model(torch.randn(1, n))["chord_type"].shape == (1, 32)


def test_gradients_reach_every_parameter():
    model = small_model()
    loss = ChordRecognitionLoss()
    targets = {"chord_type": torch.tensor([1, 2]), "root": torch.tensor([0, 5]), "bass_note": torch.tensor([0, 5])}
    loss(model(torch.randn(2, 44100)), targets)["total_loss"].backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert missing == []


def test_overfits_a_tiny_batch():
    """A model that cannot memorise 8 clips is broken, whatever it scores later."""
    model = small_model(sample_rate=16000)
    criterion = ChordRecognitionLoss(label_smoothing=0.0)
    generator = torch.Generator().manual_seed(1)
    audio = torch.randn(8, 16000, generator=generator)
    targets = {
        "chord_type": torch.randint(1, 32, (8,), generator=generator),
        "root": torch.randint(0, 12, (8,), generator=generator),
        "bass_note": torch.randint(0, 12, (8,), generator=generator),
    }
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(60):
        total = criterion(model(audio), targets)["total_loss"]
        first = first if first is not None else total.item()
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
    assert total.item() < 0.2 * first


def test_windowed_attention_matches_full_attention_when_the_window_covers_the_input():
    model = small_model().eval()
    audio = torch.randn(1, 44100)
    t = model.frontend.num_frames(44100)
    full = model.embed_frames(audio)
    full = model.heads["chord_type"](full)
    assert torch.allclose(model.forward_frames(audio, window_frames=t)["chord_type"], full, atol=1e-5)
    windowed = model.forward_frames(audio, window_frames=4)["chord_type"]
    assert windowed.shape == full.shape and torch.isfinite(windowed).all()


def test_hparams_rebuild_an_identical_model():
    model = small_model().eval()
    clone = ChordRecognitionModel(**model.hparams).eval()
    clone.load_state_dict(model.state_dict())
    audio = torch.randn(1, 8000)
    assert torch.equal(model(audio)["root"], clone(audio)["root"])


def _settings(cls: type) -> dict:
    """``{name: (type, default)}`` of the positional-or-keyword parameters of ``cls``."""
    hints = typing.get_type_hints(cls.__init__)
    return {
        p.name: (hints[p.name], p.default)
        for p in inspect.signature(cls).parameters.values()
        if p.kind is p.POSITIONAL_OR_KEYWORD
    }


@pytest.mark.parametrize(
    "cls,schema", [(ChordRecognitionModel, ChordModelConfig), (ChordRecognitionLoss, ChordLossConfig)]
)
def test_the_config_schema_is_read_from_the_constructor(cls, schema):
    """The schema conf/ is checked against is derived from the constructor's source (so
    composing a config never imports torch): it must say what the signature says."""
    hints = typing.get_type_hints(schema)
    fields = {f.name: (hints[f.name], f.default) for f in dataclasses.fields(schema) if f.name != "_target_"}
    settings = _settings(cls)
    for name, (kind, default) in fields.items():
        if isinstance(default, str) and default.startswith("${data."):  # follows the data it is trained on
            fields[name] = (kind, settings[name][1])
    assert fields == settings
    assert schema._target_ == f"{cls.__module__}.{cls.__qualname__}"


def test_hparams_are_every_constructor_argument():
    model = small_model(frame_outputs=True)
    assert list(model.hparams) == list(_settings(ChordRecognitionModel))
    assert model.hparams["d_model"] == 32 and model.hparams["frame_outputs"] is True


def test_feedforward_ratio_sets_the_width_of_each_blocks_feedforward_layer():
    default, wide = small_model(), small_model(feedforward_ratio=8)
    assert default.encoder.layers[0].linear1.out_features == 4 * 32  # the default keeps the former 4 * d_model
    assert wide.encoder.layers[0].linear1.out_features == 8 * 32
    assert count_parameters(wide) > count_parameters(default)
    assert wide.hparams["feedforward_ratio"] == 8
    assert wide(torch.randn(1, 8000))["root"].shape == (1, 12)
