"""The quiet console: the user's lines on the terminal, every other write in the log file."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import os, subprocess, sys
    from pathlib import Path
    from gemma_serving.commands.console import Console

    console = Console.quiet(Path(sys.argv[1]))
    console.say("engine ready")
    print("a print of some library")
    os.write(2, b"raw stderr of native code\\n")
    subprocess.run([sys.executable, "-c", "print('a child process')"], check=True)
    """
)


def test_quiet_console_sends_everything_but_its_lines_to_the_log(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "serve.log"
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(log)], capture_output=True, text=True, check=True
    )
    assert done.stdout == "engine ready\n"
    assert done.stderr == ""
    text = log.read_text()
    for line in ("[gemma-serving] engine ready", "a print of some library", "raw stderr"):
        assert line in text
    assert "a child process" in text
