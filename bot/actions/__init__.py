"""Rasa custom actions (rasa-sdk), run by `alerte actions` as the action server.

They share the service's code: the flow, the understanding, the gazetteer and the
storage. They never send text: every reply is a payload of message id and language
(bot.messages), rendered by the channel.
"""

from bot.actions import commands, form  # noqa: F401  (registers the actions)
