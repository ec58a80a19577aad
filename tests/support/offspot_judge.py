#!/usr/bin/env python3
"""The device's verdict on `offspot.yaml` documents, from offspot-config's own code.

On the device, `offspot-runtime-config-fromfile` loads the file, and for each key calls a
handler that builds a command line and runs one `offspot-runtime-config-<key>` program, whose
argparse and `checks.is_valid_*` calls decide. This script runs that very path — the real
`fromfile.main`, the real handlers, the real entry points with their argparse — in one
process, so that nothing touches the machine: the sub-programs run in-process instead of as
subprocesses, and each one stops (as accepted) at the first step *after* its validation
(writing hostapd.conf, calling timedatectl…). Services are not started.

Input on stdin: a JSON list of YAML texts. Output on stdout: a JSON list of
{"ok": bool, "why": "the device's error lines"}, one per text.
"""

import io
import json
import logging
import os
import pathlib
import re
import sys
import tempfile

from offspot_runtime import (
    ap,
    containers,
    ethernet,
    firmware,
    fromfile,
    hostname,
    timezone,
)


class Validated(BaseException):
    """Raised at the first side effect after validation. A BaseException so that the entry
    points' `except Exception` (which turns errors into exit 1) lets it through."""


def validated(*_args, **_kwargs):
    raise Validated()


# perf is kept only on a brcm43455 chip, read from /sys: this machine's chip is no business of
# the verdict (the profile is checked either way).
ap.is_using_brcm43445 = lambda interface: False
# The first step after validation in each program's main().
ap.unblock_wireless = validated
timezone.simple_run = validated
hostname.simple_run = validated
ethernet.ensure_dhcpcd_conf_armor = validated
containers.ensure_folder = validated
# firmware has no single next step: with no files to switch it returns 0 ("no change").
firmware.MATRIX = {chip: [] for chip in firmware.MATRIX}

PROGRAMS = {
    "offspot-runtime-config-ap": ap,
    "offspot-runtime-config-containers": containers,
    "offspot-runtime-config-ethernet": ethernet,
    "offspot-runtime-config-firmware": firmware,
    "offspot-runtime-config-hostname": hostname,
    "offspot-runtime-config-timezone": timezone,
}


def run_program(command, stdin=None, *, failsafe=False):
    """configlib.simple_run, with the program run in-process."""
    # subprocess.run refuses these before starting anything; simple_run returns 1.
    for arg in command:
        if not isinstance(arg, (str, bytes, os.PathLike)):
            logging.error(f"subprocess: argument {arg!r} is not a string")
            return 1
        if "\0" in str(arg):
            logging.error("subprocess: embedded null byte")
            return 1
    name = pathlib.Path(str(command[1] if len(command) > 1 else command[0])).name
    module = PROGRAMS.get(name)
    if module is None:  # shutdown after a firmware change
        return 0
    sys.argv = [name, *command[2:]]
    sys.stdin = io.StringIO(stdin or "")
    try:
        module.entrypoint()
        code = 0
    except Validated:
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    if code != 0 and not failsafe:
        return 1
    return code


fromfile.simple_run = run_program
fromfile.start_containers_stack = lambda: 0
fromfile.start_ap_stack = lambda: 0
fromfile.save_config = lambda *args, **kwargs: None
if hasattr(fromfile, "record_to_latest"):
    fromfile.record_to_latest = lambda *args, **kwargs: None


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.ERROR)
        self.lines = []

    def emit(self, record):
        # without the colour escapes the runtime puts in its messages
        self.lines.append(re.sub(r"\x1b\[[0-9;]*m", "", record.getMessage()))


def judge(text, workdir):
    collect = Collect()
    root = logging.getLogger()
    root.handlers = [collect]
    path = pathlib.Path(workdir) / "offspot.yaml"
    path.write_text(text)
    stderr = sys.stderr
    sys.stderr = io.StringIO()  # argparse prints its errors there
    try:
        # fromfile.entrypoint turns any exception of main() into exit 1.
        try:
            code = fromfile.main(path)
        except Exception as exc:
            logging.error(f"{type(exc).__name__}: {exc}")
            code = 1
    finally:
        argparse_errors = sys.stderr.getvalue()
        sys.stderr = stderr
    why = [line for line in argparse_errors.splitlines() if "error:" in line]
    return {"ok": code == 0, "why": "; ".join(why + collect.lines)}


def main():
    texts = json.load(sys.stdin)
    with tempfile.TemporaryDirectory() as workdir:
        verdicts = [judge(text, workdir) for text in texts]
    json.dump(verdicts, sys.stdout)


if __name__ == "__main__":
    main()
