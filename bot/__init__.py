"""Channel-neutral conversation layer: languages, messages, understanding, dialogue.

Nothing here imports Flask or Rasa; the service and the Rasa action server both use it.
"""
