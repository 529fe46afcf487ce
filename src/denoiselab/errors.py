"""The one exception type for anything a user can fix."""


class DenoiselabError(Exception):
    """A problem the user can fix: a bad path, an unsupported image, a value out of range.

    The message is one line that names the value, what was expected and how to fix it.
    The CLI prints it as ``denoiselab: error: <message>`` and exits with code 2.
    """
