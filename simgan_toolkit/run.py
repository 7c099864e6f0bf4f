"""``python -m simgan_toolkit.run --task NAME [...]``: the main job (same as ``simgan run``)."""

import sys

from simgan_toolkit.cli import main

if __name__ == "__main__":
    argv = sys.argv[1:]
    sys.exit(main(argv if argv[:1] in (["refine"], ["convert"], ["plugins"], ["run"]) else ["run", *argv]))
