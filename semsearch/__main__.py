"""`semsearch` and `python -m semsearch`: the CLI (`semsearch.cli`), loaded so that Ctrl-C pressed
while it loads ends the command as one pressed later does, in one line (it printed a traceback of
the import it cut short)."""

import sys


def main() -> None:
    try:
        from semsearch.cli import run
    except KeyboardInterrupt:
        print("interrupted; nothing was changed", file=sys.stderr)  # as the CLI says it (`cli._interrupted`)
        raise SystemExit(130) from None
    run()


if __name__ == "__main__":
    main()
