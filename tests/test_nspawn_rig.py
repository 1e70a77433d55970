"""The real-systemd test's plumbing: it fails with a reason instead of skipping, and it
runs exactly the README's install block."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration import nspawn_rig
from tests.integration.test_systemd_nspawn import readme_install_steps


def test_missing_nspawn_is_a_reason_not_a_skip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nspawn_rig.os, "geteuid", lambda: 0)
    monkeypatch.setattr(nspawn_rig.shutil, "which", lambda *a, **k: None)
    with pytest.raises(nspawn_rig.RigError, match="systemd-nspawn not found: apt-get install"):
        nspawn_rig.preflight()


def test_not_root_is_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nspawn_rig.os, "geteuid", lambda: 1000)
    with pytest.raises(nspawn_rig.RigError, match="needs root"):
        nspawn_rig.preflight()


def test_readme_block_is_parsed_one_command_per_line(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("intro\n```sh\nmake demo\n```\n<!-- install-steps: x -->\n```sh\n"
                      "sudo make install          # venv, unit\n\n"
                      'sudo replenish device init --hostname "$(hostname)"  # CA\n```\nmore\n')
    assert readme_install_steps(readme) == [
        "sudo make install", 'sudo replenish device init --hostname "$(hostname)"']


def test_the_real_readme_has_the_install_block() -> None:
    steps = readme_install_steps()
    assert steps[0] == "sudo make install"
    assert "sudo systemctl enable --now replenish-agent" in steps
    assert steps.index("sudo systemctl enable --now replenish-agent") < steps.index(
        "sudo systemctl restart mosquitto"), "the test relies on the agent starting first"
