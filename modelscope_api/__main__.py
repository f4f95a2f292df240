"""`python -m modelscope_api …` — see modelscope_api/cli.py."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
