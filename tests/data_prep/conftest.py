import os
import sys

DATA_PREP = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "data-prep")
if DATA_PREP not in sys.path:
    sys.path.insert(0, DATA_PREP)
