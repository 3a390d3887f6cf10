"""Without tinysoundfont (a plain ``pip install``: its pyaudio dependency does not build
without PortAudio headers) the default font falls back to the additive renderer, with a
warning, so the default run trains; a font named explicitly still needs the player."""

from __future__ import annotations

import logging
import sys

import numpy as np
import pytest

from chordexp.data.soundfont import AdditiveRenderer, Note, SoundFontRenderer, SoundFontUnavailable, shared_renderer

SR = 16000
NOTES = [Note(60, 0.8, 0.0, 0), Note(64, 0.6, 0.1, 24, 0.5), Note(36, 0.9, 0.2, 0, 0.2, bank=128)]


@pytest.fixture
def without_tinysoundfont(monkeypatch):
    shared_renderer.cache_clear()
    monkeypatch.setitem(sys.modules, "tinysoundfont", None)  # import tinysoundfont: ImportError
    yield
    shared_renderer.cache_clear()


def test_the_default_font_falls_back_to_the_additive_renderer_with_a_warning(without_tinysoundfont, caplog):
    with caplog.at_level(logging.WARNING, logger="chordexp.data.soundfont"):
        renderer = shared_renderer(None, SR)
    assert isinstance(renderer, AdditiveRenderer)
    assert "tinysoundfont is not installed" in caplog.text and "pip install --no-deps tinysoundfont" in caplog.text


def test_a_named_font_and_the_renderer_itself_still_need_tinysoundfont(without_tinysoundfont, tmp_path):
    with pytest.raises(SoundFontUnavailable, match="needs tinysoundfont"):
        shared_renderer(str(tmp_path / "font.sf2"), SR)
    with pytest.raises(SoundFontUnavailable, match="needs tinysoundfont"):
        SoundFontRenderer(sample_rate=SR)


def test_the_additive_renderer_plays_each_note_when_it_sounds_and_is_deterministic():
    renderer = AdditiveRenderer(SR)
    audio = renderer.render(NOTES, SR)
    assert audio.dtype == np.float32 and audio.shape == (SR,)
    assert np.array_equal(audio, renderer.render(NOTES, SR))
    assert np.abs(audio).max() > 0.1 and np.isfinite(audio).all()
    alone = renderer.render(NOTES[:1], SR)
    assert np.array_equal(alone[:1600], audio[:1600])  # before the second note's onset (0.1 s)
    assert not np.array_equal(alone[1600:], audio[1600:])
    spectrum = np.abs(np.fft.rfft(alone[: SR // 2]))
    assert abs(np.argmax(spectrum) * 2 - 261.6) < 3  # middle C
    released = renderer.render(NOTES[:1], SR, release=0.25)
    assert not released[-SR // 4 :].any() and released[: SR // 2].any()


def test_environment_json_records_whether_the_player_was_there():
    from chordexp.experiment.run_folder import package_versions

    versions = package_versions()
    assert "tinysoundfont" in versions  # null in a run whose SoundFont parts the fallback played
