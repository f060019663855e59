#!/usr/bin/env python3
"""Serves images for virtual media tests, as a deploy server would.

usage: media_server.py ADDRESS DIRECTORY

Binds ADDRESS on a free port, prints {"port": N} on one line, then serves
until killed:
  /<file>        the file, with Last-Modified and an ETag (Python's
                 http.server, the server Ironic's own test setups use)
  /slow/<file>   the file, sent at about 20 KiB/s (a load that takes time)
  /hang          accepts the request and never answers
  /auth/<file>   the file, for HTTP Basic user "media" password "secret"
                 only (401 otherwise)
Every request is logged to stderr.
"""

import base64
import http.server
import json
import os
import sys
import time


class Handler(http.server.SimpleHTTPRequestHandler):
    def end_headers(self):
        path = self.translate_path(self.path)
        if os.path.isfile(path):
            st = os.stat(path)
            self.send_header("ETag", '"%x-%x"' % (st.st_mtime_ns, st.st_size))
        super().end_headers()

    def do_GET(self):
        if self.path == "/hang":
            time.sleep(3600)
            return
        if self.path.startswith("/auth/"):
            wanted = "Basic " + base64.b64encode(b"media:secret").decode()
            if self.headers.get("Authorization") != wanted:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="media"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.path = "/" + os.path.basename(self.path)
            super().do_GET()
            return
        if self.path.startswith("/slow/"):
            name = os.path.join(self.directory, os.path.basename(self.path))
            try:
                data = open(name, "rb").read()
            except OSError:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("ETag", '"slow-%d"' % len(data))
            self.end_headers()
            try:
                for i in range(0, len(data), 2048):
                    self.wfile.write(data[i:i + 2048])
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:
                pass
            return
        super().do_GET()


def main(argv):
    if len(argv) != 3:
        raise SystemExit(__doc__)
    address, directory = argv[1], argv[2]

    def handler(*args, **kwargs):
        return Handler(*args, directory=directory, **kwargs)

    server = http.server.ThreadingHTTPServer((address, 0), handler)
    server.daemon_threads = True
    print(json.dumps({"port": server.server_address[1]}), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv)
