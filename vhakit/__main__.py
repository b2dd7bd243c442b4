"""``python -m vhakit ...`` is the same as the ``vhakit`` console script."""
from vhakit.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
