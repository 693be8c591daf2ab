"""The local package repository of a node, filled from a release's OS image.

local.py keeps the on-disk layout and its state; update.py installs an image atomically;
server.py serves the repository over HTTP; fetch.py is the host side that downloads from it.
"""
