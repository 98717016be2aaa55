#!/usr/bin/env python3
"""The example plugin in Python, for mphost: the commands "shout" (the
words in capitals) and "wordcount", with the Python client library
(clients/python) serving the plugin's Init on stdin and stdout.

The host calls Init.activate with a Host handle; the plugin keeps it,
registers its commands (each a callback the host calls as Command.call)
and returns an Extension, which the host holds until it stops the plugin.
"""

import os
import sys

try:
    import mpbridge
except ImportError:  # run from the repository: use the client beside us
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "clients", "python"))
    import mpbridge


class Extension:
    def __init__(self, host):
        self.host = host
        self.suffix = host.call("Host.getSetting", key="suffix") or ""
        # Keep the Registrations: releasing one unregisters its command.
        self.registrations = [
            host.call("Host.registerCommand", name="shout", title="the words in capitals", run=self.shout),
            host.call("Host.registerCommand", name="wordcount", title="count the words", run=self.wordcount),
        ]

    def shout(self, args):
        return " ".join(args).upper() + self.suffix

    def wordcount(self, args):
        return "%d words" % len(args)

    def deactivate(self):
        self.host.call("Host.log", level="info", message="deactivated")

    def close(self):  # the host released the Extension
        for r in self.registrations:
            r.close()
        self.host.close()


class Plugin:
    def activate(self, host):
        host.keep()  # valid after activate returns, until close()
        host.call("Host.log", level="info", message="activated in process %d (Python)" % os.getpid())
        return Extension(host)


if __name__ == "__main__":
    sys.exit(mpbridge.serve(Plugin()))
