"""Every burst command line parser: a usage error is one usage line, then the error.

argparse prints a parser's whole usage (nine lines for ``run``) before the error,
which pushes the one line that matters off a small terminal. ``Parser`` prints
``usage: burst run AMI JOB JOBFILE [options]``, the error, and for a mistyped
option the closest real one (``--wiat``: did you mean ``--wait``?). Exit status 2,
as argparse.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys


class Parser(argparse.ArgumentParser):
    def short_usage(self) -> str:
        words = [self.prog]
        for action in self._actions:
            if action.option_strings:
                continue
            if isinstance(action, argparse._SubParsersAction):
                words.append("COMMAND ...")
            else:
                words.append(action.metavar or action.dest.upper())
        return "usage: " + " ".join(words) + " [options]"

    def option_strings(self) -> list[str]:
        """Every option of this parser and of its subcommands (a typo may belong to either)."""
        found = []
        for action in self._actions:
            found += [o for o in action.option_strings if o.startswith("--")]
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    if isinstance(sub, Parser):
                        found += sub.option_strings()
        return sorted(set(found))

    def error(self, message: str) -> None:  # argparse's hook: must not return
        hint = ""
        choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if choice:
            close = difflib.get_close_matches(choice.group(1), re.findall(r"'([^']*)'", choice.group(2)), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
        if message.startswith("unrecognized arguments:"):
            for word in message.split(":", 1)[1].split():
                close = difflib.get_close_matches(word.split("=")[0], self.option_strings(), n=1)
                if word.startswith("-") and close:
                    hint = f"; did you mean {close[0]}?"
                    break
        sys.stderr.write(f"{self.short_usage()}\nerror: {message}{hint} (all options: {self.prog} --help)\n")
        sys.exit(2)


def _number(kind, text: str, low: float, what: str):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if not (value >= low) or value in (float("inf"),):  # `not >=` is also true of NaN
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
    return value


def positive_int(text: str) -> int:
    return _number(int, text, 1, "a whole number of at least 1")


def non_negative_int(text: str) -> int:
    return _number(int, text, 0, "a whole number of at least 0")


def positive_float(text: str) -> float:
    value = _number(float, text, 0, "a number of seconds above 0")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0")
    return value


def slots(text: str) -> str:
    return "auto" if text == "auto" else str(_number(int, text, 1, "a whole number of at least 1, or 'auto'"))
