"""The management node (MN): REST API, global settings, heartbeat, maintenance mode, console.

    python -m skylift.mn serve --db URL [--port 8080] [--maintenance]   # or `skylift mn serve`
    skylift.mn.launch.start_mn(db_url, port=...) -> MnHandle            # for procedures and tests
"""
