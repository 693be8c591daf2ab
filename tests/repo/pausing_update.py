"""`repo update` of an image that pauses at every stage it passes, for a test to kill it there.

    python pausing_update.py IMAGE NODE_ROOT SECONDS
"""

import sys
import time

from skylift.repo.update import update_from_image

image, node_root, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
update_from_image(image, node_root, on_stage=lambda stage: time.sleep(seconds))
