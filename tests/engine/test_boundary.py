import subprocess
import sys


def test_engine_and_headless_cli_import_no_textual():
    code = (
        "import sys, tui_trainer.engine, tui_trainer.engine.loop, tui_trainer.train_printer, tui_trainer.cli\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'textual_plotext', 'plotext'))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
