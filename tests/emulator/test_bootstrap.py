"""Where the emulator works: ``--work-dir``, the config's ``settings.workDir``, else ``$KIOSK_HOME/emulator``."""

from __future__ import annotations

from pathlib import Path

from kiosk.emulator.bootstrap import emulator_work_dir


def test_the_default_is_under_kiosk_home(tmp_path: Path) -> None:
    assert emulator_work_dir(None, None, {"KIOSK_HOME": str(tmp_path)}) == tmp_path / "emulator"


def test_without_kiosk_home_it_is_under_dot_kiosk_in_the_current_directory() -> None:
    assert emulator_work_dir(None, None, {}) == Path.cwd() / ".kiosk" / "emulator"


def test_a_relative_work_dir_in_the_config_is_under_kiosk_home_an_absolute_one_is_kept(tmp_path: Path) -> None:
    env = {"KIOSK_HOME": str(tmp_path / "home")}
    assert emulator_work_dir(None, "runs-here", env) == tmp_path / "home" / "runs-here"
    assert emulator_work_dir(None, str(tmp_path / "elsewhere"), env) == tmp_path / "elsewhere"


def test_the_work_dir_option_wins_and_is_made_absolute(tmp_path: Path) -> None:
    env = {"KIOSK_HOME": str(tmp_path / "home")}
    assert emulator_work_dir(tmp_path / "cli", "runs-here", env) == tmp_path / "cli"
    assert emulator_work_dir(Path("relative"), None, env) == Path.cwd() / "relative"
