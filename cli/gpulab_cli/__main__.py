"""python -m gpulab_cli: the same as the gpulab command."""
import sys

from gpulab_cli.main import main

sys.exit(main())
