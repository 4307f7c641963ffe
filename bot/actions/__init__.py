"""Rasa custom actions (rasa-sdk), run by `alerte actions` as the action server.

They share the service's code: the flow, the understanding, the gazetteer and the
storage. They never send text: every reply is a payload of message id and language
(bot.messages), rendered by the channel.
"""

from bot.actions import commands, form  # noqa: F401  (registers the actions)


def cli(parser):
    """`alerte actions`: the Rasa action server (rasa-sdk) serving these actions."""
    parser.add_argument("--port", type=int, default=5055)

    def run(args) -> int:
        import os
        import sys

        os.environ.setdefault("SANIC_HOST", "127.0.0.1")  # compose sets 0.0.0.0 on its network
        os.execvp(sys.executable, [sys.executable, "-m", "rasa_sdk", "--actions", "bot.actions",
                                   "-p", str(args.port)])
    return run
