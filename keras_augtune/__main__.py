"""``python -m keras_augtune``: the ``keras-augtune`` command."""

import sys

from keras_augtune.cli import main

sys.exit(main())
