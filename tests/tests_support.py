"""Constants the test folders share (the servers' admin URLs)."""

import os

ADMIN_URL = os.environ.get("SKYLIFT_TEST_MARIADB", "mysql://root@127.0.0.1:3306/")
