"""The one error of reading a delivered file, shared by the readers and the workbook guard."""


class Unreadable(Exception):
    """The file cannot be read at all; ``str()`` is the reason (without the file name)."""
