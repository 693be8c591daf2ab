"""tests/browser_kit.py works: a page served on 127.0.0.1 runs its script in the headless
Chromium, and a JavaScript error on a page is reported by severe_console_errors."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from browser_kit import severe_console_errors, wait_for

# rel=icon data:, so the browser asks for no /favicon.ico (a 404 would be a SEVERE entry)
CLEAN = b"""<!doctype html>
<html><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>before</title></head>
<body><script>
document.title = "set by the script";
const p = document.createElement("p");
p.id = "x";
p.textContent = "ran";
document.body.appendChild(p);
</script></body></html>
"""

BROKEN = b"""<!doctype html>
<html><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>broken</title></head>
<body><p id="x">here</p><script>throw new Error("boom");</script></body></html>
"""

PAGES = {"/clean.html": CLEAN, "/broken.html": BROKEN}


class _Pages(BaseHTTPRequestHandler):
    def do_GET(self):
        body = PAGES.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # quiet
        pass


@contextmanager
def serving():
    """The pages on a free port of 127.0.0.1, served from a thread; its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_a_local_page_runs_its_script_without_console_errors(browser):
    with serving() as base:
        severe_console_errors(browser)  # drop what an earlier test left in the log
        browser.get(f"{base}/clean.html")
        assert wait_for(browser, "#x").text == "ran"
        assert browser.title == "set by the script"
        assert severe_console_errors(browser) == []


def test_a_javascript_error_is_reported_by_severe_console_errors(browser):
    with serving() as base:
        severe_console_errors(browser)
        browser.get(f"{base}/broken.html")
        wait_for(browser, "#x")
        seen: list[dict] = []
        wait_for(browser, lambda d: seen.extend(severe_console_errors(d)) or seen, timeout=5)
        assert any("boom" in entry["message"] for entry in seen), seen
