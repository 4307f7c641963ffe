"""Rasa custom actions (rasa-sdk), run by `alerte actions` as the action server.

They live on the service side because they store: drafts, confirmed alerts and the
reporter's choices go to the service's database (service.alerts, service.models), with
the service's configuration (service.config). The conversation logic they apply (the
flow, the understanding, the gazetteer, the answer readers) is bot/'s, which never
imports this package. They never send text: every reply is a payload of message id and
language (bot.messages), rendered by the channel.

rasa-sdk imports every module of this package (`--actions service.actions`), which
registers the actions; importing the package alone (as the `alerte` CLI does) does not.
"""

PACKAGE = __name__


def cli(parser):
    """`alerte actions`: the Rasa action server (rasa-sdk) serving these actions."""
    parser.add_argument("--port", type=int, default=5055)

    def run(args) -> int:
        import os
        import sys

        from service import config

        config.load()  # like `alerte web`: refuse an unsafe production configuration before starting
        os.environ.setdefault("SANIC_HOST", "127.0.0.1")  # compose sets 0.0.0.0 on its network
        os.execvp(sys.executable, [sys.executable, "-m", "rasa_sdk", "--actions", PACKAGE,
                                   "-p", str(args.port)])
    return run
